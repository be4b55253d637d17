"""The measurements of one database; imported only after ``django.setup()``."""

from __future__ import annotations

import contextlib
import signal
import statistics
import time
from typing import Any

import psutil

from benchmarks import database, reference, tasks
from benchmarks.processes import (
    RssSampler,
    busy_cpu,
    kill_group,
    start_worker,
    tree_cpu,
    wait_exit,
)
from geartrain import bulk_enqueue
from geartrain.jobs import Call
from geartrain.models import Job, JobStatus, WorkerProcess

Result = dict[str, Any]


def _wait_until(check: Any, timeout: float, what: str, step: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout}s waiting for {what}")
        time.sleep(step)


def enqueue_one_by_one(count: int) -> Result:
    """``task.enqueue()`` in a loop, each in its own transaction (autocommit)."""
    database.truncate()
    for _ in range(50):  # warm up the connection and the code paths
        tasks.noop.enqueue()
    database.truncate()
    started = time.perf_counter()
    for _ in range(count):
        tasks.noop.enqueue()
    seconds = time.perf_counter() - started
    assert database.count(JobStatus.READY) == count
    return {"jobs": count, "seconds": seconds, "rate": count / seconds}


def enqueue_bulk(count: int) -> Result:
    """One ``geartrain.bulk_enqueue`` call of ``count`` jobs."""
    database.truncate()
    calls: list[Call] = [((), {})] * count
    bulk_enqueue(tasks.noop, calls[:100])  # warm up
    database.truncate()
    started = time.perf_counter()
    bulk_enqueue(tasks.noop, calls)
    seconds = time.perf_counter() - started
    assert database.count(JobStatus.READY) == count
    return {"jobs": count, "seconds": seconds, "rate": count / seconds}


ServerCpu = tuple[int, float] | None


def _server_cpu() -> ServerCpu:
    """(postmaster pid, server CPU seconds so far), or None when out of sight."""
    pid = database.postmaster_pid()
    cpu = None if pid is None else tree_cpu(pid)
    return None if pid is None or cpu is None else (pid, cpu)


def _server_delta(before: ServerCpu) -> float | None:
    """Server CPU since ``before``, if known.

    Raises:
        RuntimeError: PostgreSQL restarted meanwhile, so the run measured nothing
            useful (``benchmarks.run`` then runs the database's suite again).
    """
    after = _server_cpu()
    if before is None or after is None:
        return None
    if before[0] != after[0]:
        raise RuntimeError("PostgreSQL restarted during the measurement")
    return after[1] - before[1]


def _burst(db: str, timeout: float) -> Result:
    """Run one burst worker to its exit; seconds from spawn to exit, tree CPU."""
    server_before = _server_cpu()
    busy_before = busy_cpu()
    started = time.perf_counter()
    proc = start_worker(db, burst=True)
    try:
        ended = wait_exit(proc, timeout)
    finally:
        kill_group(proc)
    seconds = time.perf_counter() - started
    if ended.code != 0:
        raise RuntimeError(f"burst worker exited with code {ended.code}")
    return {
        "seconds": seconds,
        "cpu_seconds": ended.cpu,
        "machine_cpu_seconds": busy_cpu() - busy_before,
        "server_cpu_seconds": _server_delta(server_before),
    }


def startup(db: str, repeat: int) -> Result:
    """A burst worker on an empty queue: start-up and shutdown, no jobs."""
    database.truncate()
    runs = [_burst(db, timeout=60) for _ in range(repeat)]
    return _median_run(runs)


def _transactions_since(before: int | None) -> int | None:
    if before is None:
        return None
    time.sleep(1.2)  # PostgreSQL's statistics reach pg_stat_database within a second
    after = database.transactions()
    return None if after is None else after - before


def drain_geartrain(db: str, jobs: int) -> Result:
    database.fill(jobs)
    before = database.transactions()
    run = _burst(db, timeout=max(120.0, jobs / 20))
    run["transactions"] = _transactions_since(before)
    counts = database.status_counts()
    if counts.get(JobStatus.SUCCEEDED, 0) != jobs:
        raise RuntimeError(f"geartrain drain left {counts}")
    return {**run, "jobs": jobs}


def drain_reference(vendor: str, jobs: int) -> Result:
    database.fill(jobs)
    target = (
        database.pg_conninfo() if vendor == "postgresql" else database.sqlite_path()
    )
    before = database.transactions()
    server_before = _server_cpu()
    busy_before = busy_cpu()
    run: Result = reference.run(vendor, target, timeout=max(120.0, jobs / 20))
    run["machine_cpu_seconds"] = busy_cpu() - busy_before
    run["server_cpu_seconds"] = _server_delta(server_before)
    run["transactions"] = _transactions_since(before)
    counts = database.status_counts()
    if counts.get(JobStatus.SUCCEEDED, 0) != jobs or run["jobs"] != jobs:
        raise RuntimeError(f"reference drain left {counts}, counted {run['jobs']}")
    return run


def _median_run(runs: list[Result]) -> Result:
    """The run with the median duration, plus every duration."""
    ordered = sorted(runs, key=lambda r: r["seconds"])
    return {**ordered[len(ordered) // 2], "all_seconds": [r["seconds"] for r in runs]}


def _wait_worker_ready(proc: Any, concurrency: int) -> None:
    def children_up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited early with code {proc.returncode}")
        with contextlib.suppress(psutil.Error):
            return len(psutil.Process(proc.pid).children()) >= concurrency
        return False

    _wait_until(children_up, 60, "the worker's children")
    _wait_until(WorkerProcess.objects.exists, 60, "the worker's registration")
    for _ in range(2 * concurrency):  # each child connects and reaches its wait
        done = Job.objects.filter(
            pk=tasks.stamp.enqueue().id, status=JobStatus.SUCCEEDED
        ).exists
        _wait_until(done, 30, "a warm-up job")
    time.sleep(1.5)  # every child idle, waiting for work


def _stamp_jobs(count: int, gap: float) -> list[tuple[float, float]]:
    """Enqueue ``count`` jobs ``gap`` apart.

    Returns, per job in milliseconds: (enqueue call to start, enqueue return to start).
    """
    sent: list[tuple[int, float, float]] = []
    for _ in range(count):
        before = time.time()
        result = tasks.stamp.enqueue()
        sent.append((int(result.id), before, time.time()))
        time.sleep(gap)
    ids = [pk for pk, _, _ in sent]
    _wait_until(
        lambda: (
            Job.objects.filter(pk__in=ids, status=JobStatus.SUCCEEDED).count() == count
        ),
        60,
        "the latency jobs",
        step=0.05,
    )
    rows = Job.objects.filter(pk__in=ids).values_list("id", "return_value")
    started = {pk: float(str(value)) for pk, value in rows}
    return [
        ((started[pk] - before) * 1000, (started[pk] - after) * 1000)
        for pk, before, after in sent
    ]


def _percentiles(values: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[94]


def latency(db: str, count: int = 200, gap: float = 0.02) -> Result:
    """Enqueue-to-start latency at low load, and the worker's memory meanwhile."""
    database.truncate()
    proc = start_worker(db, burst=False)
    sampler = RssSampler(proc.pid)
    try:
        with sampler.running():
            _wait_worker_ready(proc, 2)
            pairs = _stamp_jobs(count, gap)
            sampler.sample()
            sampler.sample_uss()
        proc.send_signal(signal.SIGTERM)
        ended = wait_exit(proc, 30)
    finally:
        kill_group(proc)
    millis = [total for total, _ in pairs]
    p50, p95 = _percentiles(millis)
    after_p50, after_p95 = _percentiles([after for _, after in pairs])
    return {
        "jobs": count,
        "p50_ms": p50,
        "p95_ms": p95,
        "max_ms": max(millis),
        "min_ms": min(millis),
        "after_commit_p50_ms": after_p50,
        "after_commit_p95_ms": after_p95,
        "exit_code": ended.code,
        **sampler.summary(),
    }
