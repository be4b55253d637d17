"""Profile one part of geartrain with cProfile, in this process, on the bench database.

    GEARTRAIN_BENCH_DB=postgresql python -m benchmarks.profile child --jobs 5000
    GEARTRAIN_BENCH_DB=postgresql python -m benchmarks.profile bulk --jobs 20000
    GEARTRAIN_BENCH_DB=postgresql python -m benchmarks.profile enqueue --jobs 2000

``child`` runs geartrain's real worker child loop (one child, ``--burst``) over a full
queue, without the supervisor, so the profile is the child's cost per job. ``fill``
only fills the queue (for profiling a real worker with py-spy).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time
from typing import Any


def _target(part: str, jobs: int) -> Any:
    from benchmarks import database, tasks
    from geartrain import bulk_enqueue
    from geartrain.conf import get_settings
    from geartrain.jobs import Call
    from geartrain.worker.child import Child

    if part == "child":
        database.fill(jobs)
        child = Child(
            worker_id="profile",
            queues=["default"],
            slot=[0.0, 0.0],
            conf=get_settings(),
            burst=True,
        )
        return child.run
    database.truncate()
    if part == "bulk":
        calls: list[Call] = [((), {})] * jobs
        return lambda: bulk_enqueue(tasks.noop, calls)
    return lambda: [tasks.noop.enqueue() for _ in range(jobs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("part", choices=["child", "bulk", "enqueue", "fill"])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--sort", default="cumulative")
    parser.add_argument("--limit", type=int, default=45)
    parser.add_argument("--out", help="also dump the raw profile here")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    import django

    django.setup()
    from benchmarks import database

    database.prepare()
    if args.part == "fill":
        database.fill(args.jobs)
        print(f"{args.jobs} ready no-op jobs in the benchmark database")
        return
    target = _target(args.part, args.jobs)
    profiler = cProfile.Profile()
    started, cpu = time.perf_counter(), time.process_time()
    profiler.runcall(target)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(
        f"{args.part}: {args.jobs} jobs, wall {wall:.2f}s, CPU {cpu:.2f}s "
        f"({cpu / args.jobs * 1000:.3f} ms/job, profiled)"
    )
    if args.out:
        profiler.dump_stats(args.out)
    pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.limit)
    database.truncate()


if __name__ == "__main__":
    main()
