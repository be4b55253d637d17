"""Where a worker child spends its time on pipeline steps: queries, profiles.

    GEARTRAIN_BENCH_DB=postgresql python -m benchmarks.pipeline_profile
    GEARTRAIN_BENCH_DB=sqlite python -m benchmarks.pipeline_profile --flat
    GEARTRAIN_BENCH_DB=postgresql python -m benchmarks.pipeline_profile --cprofile
    GEARTRAIN_BENCH_DB=postgresql py-spy record --idle -r 500 -f raw -o spy.txt -- \\
        python -m benchmarks.pipeline_profile
    python -m benchmarks.pipeline_profile --spy spy.txt

Builds the benchmark pipeline (``benchmarks.pipelines``: 10 stages x 100 no-op steps),
launches it, and runs geartrain's real worker ``Child`` loop in this process, without
the supervisor: one child, ``--burst`` (the child that finishes a stage enqueues the
next, so it runs out of work only at the end). Every query is timed and attributed,
through Django's ``connection.execute_wrapper``, to the part of the loop that issued
it; the table gives queries and milliseconds per step. Commits are not queries: their
time is in the wall time only (``--spy`` shows it). ``--flat`` drains as many plain
no-op jobs instead, for comparison; ``--cprofile`` adds a cProfile of the loop (which
slows it down, the query times included). ``--spy FILE`` only summarises a py-spy raw
profile of this harness by the same parts, commits included.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import os
import pstats
import re
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

# (label, geartrain function names), first match on the stack wins: specific first.
PARTS: list[tuple[str, tuple[str, ...]]] = [
    ("weights.recompute (run end)", ("recompute",)),
    ("engine.maybe_finish", ("maybe_finish",)),
    ("engine.start_stage (next stage's jobs)", ("start_stage", "start_stage_jobs")),
    ("engine._release_dependents", ("_release_dependents",)),
    ("engine.complete_stage", ("complete_stage",)),
    ("engine.steps_finished: run lock", ("lock_run", "lock_runs_of")),
    ("engine.steps_finished: stage count-down", ("count_down",)),
    ("engine.steps_finished: step runs", ("finish_steps", "steps_finished")),
    ("hooks.finish_many: jobs", ("write_successes", "finish")),
    ("starts.steps_started (batch)", ("steps_started",)),
    ("starts.step_started (one)", ("step_started",)),
    ("claim", ("claim", "claim_ids")),
    ("ack_successes", ("ack_successes",)),
    ("release", ("release",)),
    ("promote_due", ("promote_due",)),
    ("wait_for_work", ("wait_for_work",)),
]
# The same parts on py-spy's collapsed stacks, plus what is not a query.
SPY_PARTS: list[tuple[str, str]] = [
    ("finish_many: COMMIT", r"finish_(many|and_claim) .*Atomic\.__exit__"),
    ("weights.recompute (run end)", r"\brecompute \("),
    ("engine.complete_stage (stage end)", r"complete_stage"),
    ("engine.steps_finished: run lock", r"lock_run"),
    ("engine.steps_finished: other", r"steps_finished"),
    ("hooks.finish_many: jobs", r"write_successes|ClaimStrategy\.finish"),
    ("hooks.finish_many: other", r"finish_many|finish_and_claim"),
    ("engine.steps_started", r"steps_started|step_started"),
    ("claim", r"ClaimStrategy\.claim|claim_ids"),
    ("ack_successes", r"ack_successes"),
    ("to_task_result, signals", r"to_task_result|task_started|send_finished"),
    ("execute (call the task)", r"\bexecute \(geartrain/worker/executor"),
    ("promote_due, release", r"promote_due|\brelease \("),
]
LITERALS = re.compile(r"'[^']*'|\b\d+\b|%s|\?")


def _part(frame: FrameType | None) -> str:
    names = []
    while frame is not None:
        if "/geartrain/" in frame.f_code.co_filename:
            names.append(frame.f_code.co_name)
        frame = frame.f_back
    for label, wanted in PARTS:
        if any(name in wanted for name in names):
            return label
    return "other: " + (names[0] if names else "?")


def _shape(sql: str) -> str:
    """The statement with its literals blanked, cut short."""
    return LITERALS.sub("?", " ".join(sql.split()))[:90]


class QueryLog:
    """Counts and times every query, by part of the loop and statement shape."""

    def __init__(self) -> None:
        self.count: dict[tuple[str, str], int] = collections.defaultdict(int)
        self.seconds: dict[tuple[str, str], float] = collections.defaultdict(float)

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, ctx: Any
    ) -> Any:
        key = (_part(sys._getframe(1)), _shape(sql))
        started = time.perf_counter()
        try:
            return execute(sql, params, many, ctx)
        finally:
            self.seconds[key] += time.perf_counter() - started
            self.count[key] += 1

    def report(self, steps: int, wall: float, limit: int) -> None:
        seconds: dict[str, float] = collections.defaultdict(float)
        count: dict[str, int] = collections.defaultdict(int)
        for (part, sql), value in self.seconds.items():
            seconds[part] += value
            count[part] += self.count[(part, sql)]
        print(f"\n{'part of the loop':44}{'queries/step':>13}{'ms/step':>9}")
        for part in sorted(seconds, key=seconds.__getitem__, reverse=True):
            ms = seconds[part] / steps * 1000
            print(f"{part:44}{count[part] / steps:>13.3f}{ms:>9.3f}")
        n, total = sum(count.values()) / steps, sum(seconds.values()) / steps * 1000
        print(f"{'all queries':44}{n:>13.3f}{total:>9.3f}")
        print(f"{'wall time of the loop':44}{'':>13}{wall / steps * 1000:>9.3f}")
        print(f"\n{'ms/step':>8}{'n/step':>8}  part | statement")
        ranked = sorted(self.seconds.items(), key=lambda kv: kv[1], reverse=True)
        for (part, sql), value in ranked[:limit]:
            n = self.count[(part, sql)] / steps
            print(f"{value / steps * 1000:>8.3f}{n:>8.3f}  {part} | {sql}")


def summarise_spy(path: str) -> None:
    """Shares of a py-spy raw profile's samples inside ``Child.run``, by part."""
    patterns = [(label, re.compile(rx)) for label, rx in SPY_PARTS]
    counts: collections.Counter[str] = collections.Counter()
    with open(path) as fh:
        for line in fh:
            stack, _, samples = line.rstrip("\n").rpartition(" ")
            if "Child.run (" not in stack:
                continue
            label = next((lb for lb, rx in patterns if rx.search(stack)), "other")
            counts[label] += int(samples)
    total = sum(counts.values())
    print(f"{'part of the child loop':46}{'samples':>9}{'share':>8}")
    for label, n in counts.most_common():
        print(f"{label:46}{n:>9}{n / total * 100:>7.1f}%")
    print(f"{'total':46}{total:>9}")


def _child() -> Any:
    from geartrain.conf import get_settings
    from geartrain.worker.child import Child

    return Child(
        worker_id="profile",
        queues=["default"],
        slot=[0.0, 0.0],
        conf=get_settings(),
        burst=True,
    )


def _prepare(flat: bool, stages: int, steps: int) -> int:
    """Fill the queue (flat) or launch the pipeline; the number of jobs."""
    from benchmarks import database, pipelines
    from geartrain.pipelines.launching import launch

    database.prepare()
    pipelines.build(stages, steps)
    if flat:
        database.fill(stages * steps)
    else:
        launch(pipelines.NAME)
        pipelines.analyze()
    return stages * steps


def _profile(args: argparse.Namespace) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    import django

    django.setup()
    from django.db import connection

    from benchmarks import pipelines

    jobs = _prepare(args.flat, args.stages, args.steps)
    child, log = _child(), QueryLog()
    profiler = cProfile.Profile() if args.cprofile else None
    started, cpu = time.perf_counter(), time.process_time()
    with connection.execute_wrapper(log):
        if profiler is not None:
            profiler.runcall(child.run)
        else:
            child.run()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    kind = "plain jobs" if args.flat else "pipeline steps"
    print(
        f"{jobs} {kind}, one child in-process: wall {wall:.2f}s, CPU {cpu:.2f}s "
        f"({wall / jobs * 1000:.3f} ms wall, {cpu / jobs * 1000:.3f} ms CPU per job)"
    )
    log.report(jobs, wall, args.limit)
    if profiler is not None:
        pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.limit)
    pipelines.clear_runs()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stages", type=int, default=10)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--flat", action="store_true", help="plain jobs instead")
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument("--sort", default="cumulative")
    parser.add_argument("--limit", type=int, default=25)
    parser.add_argument("--spy", help="only summarise this py-spy raw profile")
    args = parser.parse_args()
    if args.spy:
        summarise_spy(args.spy)
    else:
        _profile(args)


if __name__ == "__main__":
    main()
