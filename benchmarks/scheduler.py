"""The scheduler with 10,000 schedules: ``python -m benchmarks.scheduler [--db ...]``.

Per database, in a fresh process (``--inner``): 10,000 enabled task schedules
(``*/5 * * * *``, ``0 * * * *`` and ``@daily`` in eight time zones) are created, then

* idle ticks (nothing due): wall time, SQL statements, and the plans of the due query
  and of ``next_due`` as the database explains them;
* a tick where all 10,000 are due at once: time, statements and transactions per
  fired schedule, jobs inserted per second; one more such tick is profiled by
  statement kind (and commits); an idle tick right after shows what 10,000 open fires
  cost;
* references in the same run: the same 10,000 jobs with ``geartrain.bulk_enqueue``,
  and with ``noop.enqueue()`` one by one in transactions of 100 (how the tick fires);
* memory: peak RSS (``wait4``) of a fresh process that only sets Django up, and of one
  that runs one tick (``geartrain scheduler --once`` when that command exists), idle
  and with all 10,000 due; and the peak of Python's own allocations (``tracemalloc``)
  during an all-due tick in the measuring process.

Prints a table and writes ``benchmarks/results/scheduler.json``. The measurements
are in :mod:`benchmarks.scheduler_measure`. See docs/performance.md, "Scheduler:
10,000 schedules".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.processes import ROOT, worker_env

Result = dict[str, Any]
DATABASES = ("sqlite", "postgresql", "mysql")


# --- the parent: one process per database, the table --------------------------------

# (label, path in the result, format)
ROWS: list[tuple[str, tuple[str, ...], str]] = [
    ("create schedules (bulk_create, s)", ("create_seconds",), "{:.2f}"),
    ("idle tick p50 (ms)", ("idle", "ms_p50"), "{:.2f}"),
    ("idle tick: SQL statements", ("idle", "queries"), "{:d}"),
    ("due query uses the index", ("plans_idle", "due_query", "uses_index"), "{}"),
    ("next_due uses the index", ("plans_idle", "next_due", "uses_index"), "{}"),
    ("all-due tick (s)", ("summary", "seconds"), "{:.2f}"),
    ("  per fired schedule (ms)", ("summary", "ms_per_schedule"), "{:.3f}"),
    ("  jobs inserted per second", ("summary", "jobs_per_second"), "{:,.0f}"),
    ("  statements per schedule", ("summary", "statements_per_schedule"), "{:.2f}"),
    ("  transactions per schedule", ("summary", "transactions_per_schedule"), "{:.3f}"),
    ("bulk_enqueue per job (ms)", ("reference", "bulk_ms_per_job"), "{:.3f}"),
    (
        "enqueue() in 100s per job (ms)",
        ("reference", "one_by_one_ms_per_job"),
        "{:.3f}",
    ),
    ("tick / bulk_enqueue", ("summary", "ratio_bulk"), "{:.1f}x"),
    ("tick / enqueue() in 100s", ("summary", "ratio_one_by_one"), "{:.1f}x"),
    ("idle tick, every fire open (ms)", ("idle_open_fires", "ms_p50"), "{:.2f}"),
    ("peak RSS: Django set up (MiB)", ("memory", "setup", "peak_rss_mib"), "{:.1f}"),
    ("peak RSS: idle tick (MiB)", ("memory", "idle", "peak_rss_mib"), "{:.1f}"),
    ("peak RSS: all-due tick (MiB)", ("memory", "all_due", "peak_rss_mib"), "{:.1f}"),
    (
        "all-due tick, tracemalloc peak (MiB)",
        ("memory", "traced", "tracemalloc_peak_mib"),
        "{:.2f}",
    ),
]


def summarise(result: Result) -> Result:
    runs = result["all_due_runs"]
    seconds = statistics.median(r["seconds"] for r in runs)
    count = result["schedules"]
    per = seconds / count * 1000
    transactions = [r["transactions_per_schedule"] for r in runs]
    ref = result["reference"]
    return {
        "seconds": seconds,
        "ms_per_schedule": per,
        "jobs_per_second": count / seconds,
        "statements_per_schedule": sum(
            row["per_schedule"] for row in result["profile"] if row["kind"] != "COMMIT"
        ),
        "transactions_per_schedule": None
        if None in transactions
        else statistics.median(transactions),
        "ratio_bulk": per / ref["bulk_ms_per_job"],
        "ratio_one_by_one": per / ref["one_by_one_ms_per_job"],
    }


def _cell(result: Result, path: tuple[str, ...], fmt: str) -> str:
    value: Any = result
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return "n/a" if value is None else fmt.format(value)


def table(results: dict[str, Result]) -> str:
    lines = [f"{'':36}" + "".join(f"{db:>13}" for db in results)]
    for label, path, fmt in ROWS:
        cells = "".join(f"{_cell(r, path, fmt):>13}" for r in results.values())
        lines.append(f"{label:36}{cells}")
    lines.append("")
    for db, result in results.items():
        lines.append(f"{db}: all-due tick, per fired schedule, by statement kind")
        for row in result["profile"]:
            lines.append(
                f"  {row['kind']:44}{row['per_schedule']:8.2f} x "
                f"{row['ms_per_schedule']:8.3f} ms"
            )
    return "\n".join(lines)


def _inner(db: str, args: argparse.Namespace) -> Result:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder, f"{db}.json")
        command = [sys.executable, "-m", "benchmarks.scheduler", "--inner", str(out)]
        command += ["--count", str(args.count), "--repeat", str(args.repeat)]
        proc = subprocess.Popen(command, cwd=ROOT, env=worker_env(db))
        try:
            code = proc.wait(timeout=3600)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        if code != 0:
            raise SystemExit(f"The scheduler benchmark of {db} failed ({code}).")
        result: Result = json.loads(out.read_text())
    result["summary"] = summarise(result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=[*DATABASES, "all"], default="all")
    parser.add_argument("--count", type=int, default=10_000, help="schedules")
    parser.add_argument("--repeat", type=int, default=3, help="all-due ticks timed")
    parser.add_argument("--out", default=None, help="default: results/scheduler.json")
    parser.add_argument("--inner", metavar="FILE", help=argparse.SUPPRESS)
    parser.add_argument("--probe", choices=["setup", "tick"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        from benchmarks.scheduler_measure import run_probe

        run_probe(args.probe)
        return
    if args.inner:
        import django

        django.setup()
        from benchmarks.scheduler_measure import measure

        db = os.environ["GEARTRAIN_BENCH_DB"]
        result = measure(db, args.count, args.repeat)
        Path(args.inner).write_text(json.dumps(result, indent=2, default=str))
        return
    from benchmarks.run import RESULTS, machine

    dbs = DATABASES if args.db == "all" else (args.db,)
    report: Result = {"machine": machine(), "options": vars(args), "results": {}}
    for db in dbs:
        print(f"Measuring {db} ...", flush=True)
        report["results"][db] = _inner(db, args)
    print()
    print(table(report["results"]))
    path = Path(args.out or RESULTS / "scheduler.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nWritten to {path}")


if __name__ == "__main__":
    main()
