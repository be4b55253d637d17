"""The reference: the cheapest honest database queue loop, with no Django at all.

Each of ``processes`` processes repeatedly claims ONE job, marks it succeeded and
commits, until no ready job is left:

* PostgreSQL (plain psycopg): ``SELECT id … LIMIT 1 FOR UPDATE SKIP LOCKED``, then
  ``UPDATE … SET status = 'succeeded'``, ``COMMIT``;
* SQLite (plain sqlite3): ``BEGIN IMMEDIATE``, the same ``SELECT`` without the locking
  clause, ``UPDATE``, ``COMMIT``.

It works on geartrain's own table, filled with the same rows, so both sides use the same
indexes. Its ``WHERE``/``ORDER BY`` is geartrain's claim order (``priority DESC,
run_after, id`` within one queue), which the claim index serves directly; ordering by
``priority DESC, id`` alone would make the reference sort every ready row on each claim
and flatter geartrain.
"""

from __future__ import annotations

import multiprocessing
import resource
import sqlite3
import time
from typing import Any

import psycopg

_mp = multiprocessing.get_context("fork")

TABLE = "geartrain_job"
ORDER = "ORDER BY priority DESC, run_after, id"
PG_SELECT = (
    f"SELECT id FROM {TABLE} WHERE status = 'ready' AND queue = %s "
    f"{ORDER} LIMIT 1 FOR UPDATE SKIP LOCKED"
)
PG_UPDATE = f"UPDATE {TABLE} SET status = 'succeeded' WHERE id = %s"
SQLITE_SELECT = (
    f"SELECT id FROM {TABLE} WHERE status = 'ready' AND queue = ? {ORDER} LIMIT 1"
)
SQLITE_UPDATE = f"UPDATE {TABLE} SET status = 'succeeded' WHERE id = ?"


def _pg_loop(conninfo: str, queue: str, counts: Any, index: int) -> None:
    done = 0
    with psycopg.connect(conninfo) as conn:
        while True:
            row = conn.execute(PG_SELECT, [queue]).fetchone()
            if row is None:
                conn.commit()
                break
            conn.execute(PG_UPDATE, [row[0]])
            conn.commit()
            done += 1
    counts[index] = done


def _sqlite_loop(path: str, queue: str, counts: Any, index: int) -> None:
    done = 0
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        while True:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute(SQLITE_SELECT, [queue]).fetchone()
            if row is None:
                conn.execute("COMMIT")
                break
            conn.execute(SQLITE_UPDATE, [row[0]])
            conn.execute("COMMIT")
            done += 1
    finally:
        conn.close()
    counts[index] = done


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(
    vendor: str,
    target: str,
    *,
    processes: int = 2,
    queue: str = "default",
    timeout: float = 300.0,
) -> dict[str, float]:
    """Drain the queue with the reference loop; ``target`` is a conninfo or a path.

    Raises:
        TimeoutError: when the loop has not drained the queue within ``timeout``.
    """
    loop = _pg_loop if vendor == "postgresql" else _sqlite_loop
    counts = _mp.Array("q", processes)
    workers = [
        _mp.Process(target=loop, args=(target, queue, counts, i))
        for i in range(processes)
    ]
    cpu_before = _children_cpu()
    started = time.perf_counter()
    try:
        for proc in workers:
            proc.start()
        deadline = time.monotonic() + timeout
        for proc in workers:
            proc.join(timeout=max(0.0, deadline - time.monotonic()))
            if proc.exitcode is None:
                raise TimeoutError(f"reference loop still running after {timeout}s")
            if proc.exitcode != 0:
                raise RuntimeError(f"reference loop exited with {proc.exitcode}")
        elapsed = time.perf_counter() - started
    finally:
        for proc in workers:
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=10)
    return {
        "seconds": elapsed,
        "cpu_seconds": _children_cpu() - cpu_before,
        "jobs": float(sum(counts[:])),
    }
