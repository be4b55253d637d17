"""Summarise a py-spy raw (collapsed) profile of a worker by the parts of its loop.

    py-spy record --subprocesses -r 250 -f raw -o spy.txt -- \\
        python -m django geartrain worker --burst --concurrency 2
    python -m benchmarks.flame spy.txt

Shares are of all samples in worker children (py-spy drops idle samples by default,
so this is close to a CPU profile). A sample counts for the first part its stack
matches, tried in the order of ``PARTS``.
"""

from __future__ import annotations

import argparse
import collections
import re

# (label, regular expression on the collapsed stack), most specific first.
PARTS: list[tuple[str, str]] = [
    (
        "reconnect: close_old_connections + connect",
        r"close_old_connections|\bconnect \(",
    ),
    ("claim: UPDATE … RETURNING", r"claim_ids"),
    ("claim: SELECT claimed jobs", r"ClaimStrategy\.claim "),
    ("promote_due", r"promote_due"),
    ("ack_successes (batched UPDATE)", r"ack_successes"),
    ("release", r"\brelease \("),
    ("task_started signal (+ Django's log)", r"task_started|log_task_started"),
    ("task_finished signal (+ Django's log)", r"_send_finished"),
    ("to_task_result", r"to_task_result"),
    ("execute (call task, check result)", r"\bexecute \(geartrain/worker/executor"),
    ("record outcome (log entry)", r"_record"),
    ("wait_for_work (LISTEN / sleep)", r"wait_for_work"),
]


def summarise(path: str) -> list[tuple[str, int, float]]:
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    patterns = [(label, re.compile(rx)) for label, rx in PARTS]
    with open(path) as fh:
        for line in fh:
            stack, _, n = line.rstrip("\n").rpartition(" ")
            if "_child_main" not in stack:
                continue
            samples = int(n)
            total += samples
            if "Child.run (" not in stack:
                label = "child start-up and exit (outside Child.run)"
            else:
                label = next((lb for lb, rx in patterns if rx.search(stack)), "other")
            counts[label] += samples
    return [(label, n, n / total * 100) for label, n in counts.most_common()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path")
    args = parser.parse_args()
    rows = summarise(args.path)
    total = sum(n for _, n, _ in rows)
    print(f"{'part of the child loop':46}{'samples':>9}{'share':>8}")
    for label, n, share in rows:
        print(f"{label:46}{n:>9}{share:>7.1f}%")
    print(f"{'total':46}{total:>9}")


if __name__ == "__main__":
    main()
