"""``bulk_enqueue`` against Django's ``bulk_create``: ``python -m benchmarks.bulk``.

    GEARTRAIN_BENCH_DB=mysql .venv/bin/python -m benchmarks.bulk --jobs 100000

For the database of ``GEARTRAIN_BENCH_DB`` (``sqlite``, ``postgresql`` or ``mysql``;
see ``benchmarks.settings``), alternately and ``--repeat`` times each, on an emptied
job table:

* ``geartrain.bulk_enqueue(noop, calls)`` of ``--jobs`` calls, each with one integer
  argument, including its arguments' JSON checks and the ``TaskResult`` objects it
  returns;
* the reference: ``Job.objects.bulk_create`` of as many already built ``Job`` rows,
  in batches of 2,000 (what ``bulk_enqueue`` did on SQLite and MariaDB before it had
  statements of its own; it builds no results and checks nothing).

Prints the median seconds, jobs per second and the ratio of the two rates.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import django


def _enqueue(count: int) -> float:
    from benchmarks import database, tasks
    from geartrain import bulk_enqueue

    database.truncate()
    calls = [((i,), {}) for i in range(count)]
    started = time.perf_counter()
    results = bulk_enqueue(tasks.noop, calls)
    seconds = time.perf_counter() - started
    if len(results) != count:
        raise RuntimeError(f"bulk_enqueue returned {len(results)} results")
    return seconds


def _bulk_create(count: int) -> float:
    from django.utils import timezone

    from benchmarks import database, tasks
    from geartrain.models import Job, JobStatus

    database.truncate()
    now = timezone.now()
    rows = [
        Job(
            task_path=tasks.noop.module_path,
            backend="default",
            args=[i],
            kwargs={},
            status=JobStatus.READY,
            run_after=now,
            enqueued_at=now,
        )
        for i in range(count)
    ]
    started = time.perf_counter()
    Job.objects.bulk_create(rows, batch_size=2000)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    django.setup()
    from benchmarks import database

    database.prepare()
    _enqueue(100)  # warm up: imports, connection, statement caches
    ours: list[float] = []
    reference: list[float] = []
    for _ in range(args.repeat):
        ours.append(_enqueue(args.jobs))
        reference.append(_bulk_create(args.jobs))
    database.truncate()
    mine, theirs = statistics.median(ours), statistics.median(reference)
    print(f"{database.vendor()}, {args.jobs:,} jobs, median of {args.repeat}:")
    for label, seconds in (("bulk_enqueue", mine), ("bulk_create (ref.)", theirs)):
        print(f"  {label:20}{seconds:8.2f} s {args.jobs / seconds:>10,.0f} jobs/s")
    print(f"  bulk_enqueue / bulk_create, jobs/s: {theirs / mine:.2f}x")


if __name__ == "__main__":
    main()
