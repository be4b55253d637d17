"""What delayed jobs cost a worker: ``python -m benchmarks.delayed --db sqlite``.

Measures twice, with an empty job table and with ``--jobs`` (100,000) delayed jobs
(``run_after`` one day ahead, inserted with ``bulk_enqueue``):

* a real worker child (``geartrain worker --concurrency 1``): its resident memory
  (``VmRSS`` and peak ``VmHWM`` from ``/proc/<pid>/status``) after it ran one job and
  idled, its CPU per idle second, and on PostgreSQL the database's transactions per
  idle second;
* one idle poll as a child makes it, in this process: promote due jobs, then claim a
  batch. Queries per poll, and median and p95 times of the poll, the claim and the
  promotion;
* the plans of the poll's two statements with the delayed jobs in the table:
  ``EXPLAIN (ANALYZE, BUFFERS)`` on PostgreSQL (in a transaction that is rolled back),
  ``EXPLAIN`` on MariaDB/MySQL, ``EXPLAIN QUERY PLAN`` on SQLite;
* the one promotion that readies all of them when they come due at the same moment.

It prints the figures and their ratios (with / without). It uses a database of its own
(``geartrain_bench_delayed`` on the servers, ``/tmp/geartrain-bench-delayed.sqlite3``)
with the settings of ``benchmarks.settings``, so it can run beside ``benchmarks.run``
(``--db mysql`` needs a ``benchmarks.settings`` that knows MariaDB/MySQL).
The worker is this module too: ``--worker`` configures the same settings and runs
``geartrain worker``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import django
import psutil
from django.conf import settings

from benchmarks.processes import MIB, ROOT, kill_group

NAMES = {
    "mysql": "geartrain_bench_delayed",
    "postgresql": "geartrain_bench_delayed",
    "sqlite": "/tmp/geartrain-bench-delayed.sqlite3",  # noqa: S108
}
QUEUES = ["default"]
OWNER = "bench-delayed/1"
Result = dict[str, Any]


def configure(db: str) -> None:
    """``benchmarks.settings`` for ``db``, on this benchmark's own database."""
    os.environ["GEARTRAIN_BENCH_DB"] = db
    from benchmarks import settings as base

    values = {name: getattr(base, name) for name in dir(base) if name.isupper()}
    values["DATABASES"] = {"default": {**base.DATABASES["default"], "NAME": NAMES[db]}}
    settings.configure(**values)
    django.setup()


def run_worker(db: str, args: list[str]) -> None:
    """``geartrain worker ARGS`` with this benchmark's settings (``--worker``)."""
    from django.core.management import execute_from_command_line

    configure(db)
    execute_from_command_line(["benchmarks.delayed", "geartrain", "worker", *args])


# A real worker ----------------------------------------------------------------------


def _wait(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout}s waiting for {what}")
        time.sleep(0.01)


def _proc_status(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` of ``pid`` in bytes."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) * 1024
    return found


def measure_worker(db: str, idle: float) -> Result:
    """Start a one-child worker, run one job, idle ``idle`` s, read the child."""
    from benchmarks import database, tasks
    from geartrain.models import Job, JobStatus

    command = [sys.executable, "-m", "benchmarks.delayed", "--db", db, "--worker"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [*command, "--", "--concurrency", "1"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    try:
        supervisor = psutil.Process(proc.pid)
        _wait(lambda: supervisor.children(), 30, "the worker child")
        (child,) = supervisor.children()
        canary = tasks.noop.enqueue()
        done = Job.objects.filter(pk=int(canary.id), status=JobStatus.SUCCEEDED)
        _wait(done.exists, 30, "the canary job")
        cpu_before = sum(child.cpu_times()[:2])
        xacts_before = database.transactions()
        time.sleep(idle)
        cpu = sum(child.cpu_times()[:2]) - cpu_before
        memory = _proc_status(child.pid)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        time.sleep(1.1)  # PostgreSQL reports backend counts at most once a second
        xacts_after = database.transactions()
    finally:
        kill_group(proc)
    result: Result = {
        "child_rss_mib": memory["VmRSS"] / MIB,
        "child_peak_rss_mib": memory["VmHWM"] / MIB,
        "child_cpu_ms_per_idle_second": cpu / idle * 1000,
    }
    if xacts_before is not None and xacts_after is not None:
        # Counts the whole window up to the exit: the canary's are before it.
        result["transactions_per_idle_second"] = (xacts_after - xacts_before) / idle
    return result


# One idle poll, in this process ----------------------------------------------------


def _ms(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return statistics.median(ordered) * 1000, p95 * 1000


def measure_polls(polls: int) -> Result:
    """Time ``polls`` idle polls: ``promote_due()`` then ``claim()`` of a batch."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from geartrain.conf import get_settings
    from geartrain.queue import get_strategy

    conf = get_settings()
    strategy = get_strategy("default")
    batch, lease = conf.CLAIM_BATCH_SIZE, conf.LEASE_SECONDS
    for _ in range(20):  # warm up the connection and the code paths
        strategy.promote_due()
        strategy.claim(QUEUES, batch, OWNER, lease)
    promote: list[float] = []
    claim: list[float] = []
    for _ in range(polls):
        started = time.perf_counter()
        promoted = strategy.promote_due()
        middle = time.perf_counter()
        claimed = strategy.claim(QUEUES, batch, OWNER, lease)
        promote.append(middle - started)
        claim.append(time.perf_counter() - middle)
        assert (promoted, claimed) == (0, []), "a delayed job was promoted or claimed"
    with CaptureQueriesContext(connection) as captured:
        strategy.promote_due()
        strategy.claim(QUEUES, batch, OWNER, lease)
    # MariaDB's claim is a transaction: leave its BEGIN and COMMIT out.
    statements = [
        q["sql"]
        for q in captured.captured_queries
        if q["sql"].upper() not in ("BEGIN", "COMMIT")
    ]
    poll_p50, poll_p95 = _ms([p + c for p, c in zip(promote, claim, strict=True)])
    promote_p50, promote_p95 = _ms(promote)
    claim_p50, claim_p95 = _ms(claim)
    return {
        "queries_per_poll": len(statements),
        "poll_ms_p50": poll_p50,
        "poll_ms_p95": poll_p95,
        "claim_ms_p50": claim_p50,
        "claim_ms_p95": claim_p95,
        "promote_ms_p50": promote_p50,
        "promote_ms_p95": promote_p95,
        "sql": statements,
    }


def explain(sql: str) -> list[str]:
    """The plan of ``sql`` as run: PostgreSQL executes it and rolls back."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, SUMMARY OFF) {sql}")
            lines = [str(row[0]) for row in cursor.fetchall()]
        elif connection.vendor == "mysql":
            cursor.execute(f"EXPLAIN {sql}")
            names = [column[0] for column in cursor.description]
            lines = [
                " ".join(f"{n}={v}" for n, v in zip(names, row, strict=True))
                for row in cursor.fetchall()
            ]
        else:
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
            lines = [str(row[-1]) for row in cursor.fetchall()]
        transaction.set_rollback(True)
    return lines


# The run ---------------------------------------------------------------------------


def fill(count: int) -> float:
    """Empty the job table, insert ``count`` jobs due in one day; return the seconds."""
    from django.utils import timezone

    from benchmarks import database, tasks
    from geartrain import bulk_enqueue

    database.truncate()
    started = time.perf_counter()
    if count:
        later = timezone.now() + timedelta(days=1)
        bulk_enqueue(tasks.noop.using(run_after=later), [((), {})] * count)
    seconds = time.perf_counter() - started
    database.analyze()
    return seconds


def promote_all(count: int) -> Result:
    """Make every delayed job due, then promote them all, a bounded batch a call.

    The total and the longest single promotion (one statement, one transaction: what
    a worker's poll waits for, and how long its rows stay locked).
    """
    from django.utils import timezone

    from geartrain.models import Job
    from geartrain.queue import get_strategy

    Job.objects.update(run_after=timezone.now())
    strategy = get_strategy("default")
    promoted, longest, calls = 0, 0.0, 0
    started = time.perf_counter()
    while True:
        one = time.perf_counter()
        done = strategy.promote_due()
        longest = max(longest, time.perf_counter() - one)
        if not done:
            break
        promoted += done
        calls += 1
    seconds = time.perf_counter() - started
    assert promoted == count, (promoted, count)
    return {
        "promote_all_seconds": seconds,
        "promote_longest_seconds": longest,
        "promote_calls": calls,
    }


def measure(db: str, jobs: int, polls: int, idle: float) -> dict[str, Result]:
    from benchmarks import database

    database.prepare()
    results: dict[str, Result] = {}
    for count in (0, jobs):
        inserted = fill(count)
        result = measure_worker(db, idle)
        result["insert_seconds"] = inserted
        result.update(measure_polls(polls))
        result["plans"] = [explain(sql) for sql in result.pop("sql")]
        results[str(count)] = result
    results[str(jobs)].update(promote_all(jobs))
    database.truncate()
    return results


ROWS = [
    ("worker child RSS (MiB)", "child_rss_mib", "{:.1f}"),
    ("worker child peak RSS (MiB)", "child_peak_rss_mib", "{:.1f}"),
    ("child CPU per idle second (ms)", "child_cpu_ms_per_idle_second", "{:.1f}"),
    ("transactions per idle second", "transactions_per_idle_second", "{:.1f}"),
    ("queries per idle poll", "queries_per_poll", "{:.0f}"),
    ("idle poll p50 (ms)", "poll_ms_p50", "{:.3f}"),
    ("idle poll p95 (ms)", "poll_ms_p95", "{:.3f}"),
    ("claim p50 (ms)", "claim_ms_p50", "{:.3f}"),
    ("claim p95 (ms)", "claim_ms_p95", "{:.3f}"),
    ("promotion p50 (ms)", "promote_ms_p50", "{:.3f}"),
    ("promotion p95 (ms)", "promote_ms_p95", "{:.3f}"),
]


def report(db: str, jobs: int, results: dict[str, Result]) -> None:
    empty, full = results["0"], results[str(jobs)]
    print(f"\n{db}: 0 vs {jobs:,} delayed jobs")
    print(f"  {'':34}{'0':>10}{f'{jobs:,}':>10}{'ratio':>8}")
    for label, key, fmt in ROWS:
        if key not in empty:
            continue
        a, b = empty[key], full[key]
        ratio = f"{b / a:.2f}x" if a else "-"
        print(f"  {label:34}{fmt.format(a):>10}{fmt.format(b):>10}{ratio:>8}")
    print(f"  bulk_enqueue of {jobs:,} delayed jobs: {full['insert_seconds']:.2f} s")
    print(
        f"  promoting all {jobs:,} when they come due at the same moment: "
        f"{full['promote_all_seconds']:.2f} s in {full['promote_calls']} bounded "
        f"promotions, the longest {full['promote_longest_seconds'] * 1000:.1f} ms"
    )
    for name, plan in zip(("promotion", "claim"), full["plans"], strict=True):
        print(f"  plan of the {name} with {jobs:,} delayed jobs:")
        for line in plan:
            print(f"    {line}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=sorted(NAMES), default="postgresql")
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--polls", type=int, default=1000)
    parser.add_argument("--idle", type=float, default=3.0, help="idle seconds")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("worker_args", nargs="*", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.worker:
        run_worker(options.db, options.worker_args)
        return
    configure(options.db)
    with contextlib.suppress(KeyboardInterrupt):
        report(
            options.db,
            options.jobs,
            measure(options.db, options.jobs, options.polls, options.idle),
        )


if __name__ == "__main__":
    main()
