"""The measurements of ``benchmarks.scheduler``, in the process of one database.

``python -m benchmarks.scheduler --inner FILE`` runs :func:`measure` with Django set up
for ``GEARTRAIN_BENCH_DB``; ``--probe`` runs :func:`run_probe` in a fresh process whose
peak RSS :func:`probe` reads.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from benchmarks.processes import MIB, ROOT, worker_env

CRONS = ("*/5 * * * *", "0 * * * *", "@daily")
ZONES = (
    "UTC",
    "America/New_York",
    "Europe/Paris",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Australia/Sydney",
    "America/Sao_Paulo",
    "Pacific/Chatham",
)
TASK = "benchmarks.tasks.noop"
INDEX = "geartrain_schedule_due_v1"
Result = dict[str, Any]


# --- in the measured process -------------------------------------------------------


def create(count: int, start: datetime) -> float:
    """Create ``count`` enabled task schedules starting at ``start``; seconds taken."""
    from benchmarks import database
    from geartrain.models import Schedule

    started = time.perf_counter()
    rows = []
    for i in range(count):
        schedule = Schedule(
            name=f"bench-{i:05d}",
            cron=CRONS[i % len(CRONS)],
            timezone=ZONES[i // len(CRONS) % len(ZONES)],
            task_path=TASK,
            cron_base=start,
        )
        schedule.reschedule(start, from_base=True)
        rows.append(schedule)
    Schedule.objects.bulk_create(rows, batch_size=1000)
    seconds = time.perf_counter() - started
    database.analyze(Schedule)
    return seconds


def make_all_due(now: datetime) -> None:
    """Set each schedule's next slot to its latest slot at or before ``now``."""
    from geartrain.models import Schedule
    from geartrain.scheduler import cron

    for expression in CRONS:
        for name in ZONES:
            slots = cron.slots_between(
                cron.CronExpression.parse(expression),
                now - timedelta(hours=25),
                now,
                cron.zone(name),
            )
            Schedule.objects.filter(cron=expression, timezone=name).update(
                next_slot=slots[-1], due_at=slots[-1], last_slot=None
            )


def clear_fires() -> None:
    """Delete every fire, then every job (fires refer to jobs)."""
    from django.db import connection

    from geartrain.models import Job, ScheduleFire

    with connection.cursor() as cursor:
        for model in (ScheduleFire, Job):
            cursor.execute(f"DELETE FROM {model._meta.db_table}")


def _kind(sql: str) -> str:
    """A statement's kind: verb and table, e.g. ``INSERT geartrain_job``."""
    head = sql.split(None, 1)[0].upper()
    if head in ("SAVEPOINT", "RELEASE", "ROLLBACK"):
        return f"{head} (savepoint)"
    found = re.search(r"\b(?:FROM|INTO|UPDATE)\s+[`\"]?(\w+)", sql, re.IGNORECASE)
    table = found.group(1) if found else "?"
    return f"{head} {table}" + (" FOR UPDATE" if "FOR UPDATE" in sql else "")


class Statements:
    """``execute_wrapper`` that times every statement by kind, and times commits."""

    def __init__(self) -> None:
        self.count: collections.Counter[str] = collections.Counter()
        self.seconds: collections.defaultdict[str, float] = collections.defaultdict(
            float
        )

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, ctx: Any
    ) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, ctx)
        finally:
            kind = _kind(sql)
            self.count[kind] += 1
            self.seconds[kind] += time.perf_counter() - started

    @contextlib.contextmanager
    def watching(self) -> Iterator[Statements]:
        from django.db import connection

        commit = connection._commit  # type: ignore[attr-defined]

        def timed_commit() -> None:
            started = time.perf_counter()
            try:
                commit()
            finally:
                self.count["COMMIT"] += 1
                self.seconds["COMMIT"] += time.perf_counter() - started

        setattr(connection, "_commit", timed_commit)  # noqa: B010
        try:
            with connection.execute_wrapper(self):
                yield self
        finally:
            delattr(connection, "_commit")

    def table(self, per: int) -> list[Result]:
        return [
            {
                "kind": kind,
                "per_schedule": self.count[kind] / per,
                "ms_per_schedule": self.seconds[kind] / per * 1000,
            }
            for kind in sorted(self.seconds, key=self.seconds.__getitem__, reverse=True)
        ]


def idle(now: datetime, repeat: int) -> Result:
    """Ticks at ``now`` with nothing due: median wall time and the statements."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from geartrain.scheduler import ticker

    ticker.tick(now)  # warm-up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        report = ticker.tick(now)
        times.append(time.perf_counter() - started)
        assert report.fired == 0, report
    with CaptureQueriesContext(connection) as captured:
        ticker.tick(now)
    statements = [q["sql"] for q in captured.captured_queries]
    return {
        "ms_p50": statistics.median(times) * 1000,
        "ms_max": max(times) * 1000,
        "queries": len(statements),
        "statements": statements,
    }


def explain(sql: str) -> str:
    """The database's plan of ``sql`` (run, on PostgreSQL: ANALYZE, BUFFERS)."""
    from django.db import connection, transaction

    prefix = {
        "postgresql": "EXPLAIN (ANALYZE, BUFFERS) ",
        "mysql": "EXPLAIN ",
        "sqlite": "EXPLAIN QUERY PLAN ",
    }[connection.vendor]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(prefix + sql)
        rows = cursor.fetchall()
        names = [column[0] for column in cursor.description]
    if connection.vendor == "postgresql":
        return "\n".join(row[0] for row in rows)
    if connection.vendor == "sqlite":
        return "\n".join(str(row[-1]) for row in rows)
    return "\n".join(
        ", ".join(f"{n}={v}" for n, v in zip(names, row, strict=True)) for row in rows
    )


def plans(now: datetime) -> Result:
    """Plans of the tick's due query at ``now`` and of ``next_due``, as sent."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from geartrain.conf import get_settings
    from geartrain.scheduler import ticker

    size = get_settings().SCHEDULER_BATCH_SIZE
    with CaptureQueriesContext(connection) as captured, transaction.atomic():
        ticker._due_batch(now, size)  # the tick's own query, rows unchanged
        ticker.next_due()
    sent = [q["sql"] for q in captured.captured_queries]
    due = next(sql for sql in sent if "due_at" in sql and "<=" in sql)
    upcoming = next(sql for sql in sent if "due_at" in sql and "IS NOT NULL" in sql)
    result: Result = {}
    for name, sql in (("due_query", due), ("next_due", upcoming)):
        plan = explain(sql)
        result[name] = {"sql": sql, "plan": plan, "uses_index": INDEX in plan}
    return result


def all_due(now: datetime, count: int, statements: Statements | None = None) -> Result:
    """One tick with every schedule due at ``now``; statements profiled if given."""
    from benchmarks import database
    from geartrain.models import Job
    from geartrain.scheduler import ticker

    clear_fires()
    make_all_due(now)
    before = database.transactions()
    watch = statements.watching() if statements else contextlib.nullcontext()
    with watch:
        started = time.perf_counter()
        report = ticker.tick(now)
        seconds = time.perf_counter() - started
    time.sleep(1.0)  # PostgreSQL reports transaction counts at most once a second
    after = database.transactions()
    jobs = Job.objects.count()
    assert report.fired == count == jobs, (report, jobs)
    return {
        "seconds": seconds,
        "ms_per_schedule": seconds / count * 1000,
        "jobs_per_second": jobs / seconds,
        "transactions_per_schedule": None
        if before is None or after is None
        else (after - before) / count,
        "profiled": statements is not None,
    }


def traced(now: datetime, count: int) -> Result:
    """Python's own allocations during an all-due tick (tracemalloc), and RSS."""
    import psutil

    from geartrain.scheduler import ticker

    clear_fires()
    make_all_due(now)
    process = psutil.Process()
    before = process.memory_info().rss
    tracemalloc.start()
    try:
        report = ticker.tick(now)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.fired == count, report
    return {
        "tracemalloc_peak_mib": peak / MIB,
        "rss_before_mib": before / MIB,
        "rss_after_mib": process.memory_info().rss / MIB,
    }


def references(count: int) -> Result:
    """The same ``count`` jobs: one ``bulk_enqueue``; ``enqueue()`` in 100s."""
    from django.db import transaction

    from benchmarks import tasks
    from geartrain import bulk_enqueue

    clear_fires()
    started = time.perf_counter()
    bulk_enqueue(tasks.noop, [((), {})] * count)
    bulk = time.perf_counter() - started
    clear_fires()
    started = time.perf_counter()
    for _ in range(0, count, 100):
        with transaction.atomic():
            for _ in range(100):
                tasks.noop.enqueue()
    one_by_one = time.perf_counter() - started
    clear_fires()
    return {
        "bulk_ms_per_job": bulk / count * 1000,
        "one_by_one_ms_per_job": one_by_one / count * 1000,
    }


def measure(db: str, count: int, repeat: int) -> Result:
    from django.utils import timezone

    from benchmarks import database

    database.prepare()
    # An hour ahead, so that no slot falls due in real time while idle is measured.
    start = timezone.now().replace(microsecond=0) + timedelta(hours=1)
    result: Result = {
        "database": db,
        "server_version": database.server_version(),
        "schedules": count,
        "loadavg_before": os.getloadavg(),
    }
    result["create_seconds"] = create(count, start)
    result["idle"] = idle(start, 20)
    result["plans_idle"] = plans(start)
    result["memory"] = {"setup": probe(db, "setup"), "idle": probe(db, "tick")}
    result["reference"] = references(count)
    result["all_due_runs"] = []
    for _ in range(repeat):
        now = timezone.now()
        result["all_due_runs"].append(all_due(now, count))
    result["idle_open_fires"] = idle(now, 5)  # every schedule is past ``now``
    make_all_due(timezone.now())
    result["plans_all_due"] = plans(timezone.now())
    statements = Statements()
    result["profiled_run"] = all_due(timezone.now(), count, statements)
    result["profile"] = statements.table(count)
    result["memory"]["traced"] = traced(timezone.now(), count)
    clear_fires()
    make_all_due(timezone.now())
    result["memory"]["all_due"] = probe(db, "tick")
    database.truncate()
    result["loadavg_after"] = os.getloadavg()
    return result


# --- memory probes: fresh processes -------------------------------------------------


def _scheduler_command() -> list[str] | None:
    """``geartrain scheduler --once`` if this geartrain has the subcommand."""
    from geartrain.management.commands.geartrain import SUBCOMMANDS

    if "scheduler" not in SUBCOMMANDS:
        return None
    return [sys.executable, "-m", "django", "geartrain", "scheduler", "--once"]


def probe(db: str, what: str) -> Result:
    """Peak RSS of a fresh process that sets Django up (``setup``) or ticks once."""
    own = [sys.executable, "-m", "benchmarks.scheduler", "--probe", what]
    command = (_scheduler_command() if what == "tick" else None) or own
    proc = subprocess.Popen(
        command, cwd=ROOT, env=worker_env(db), stdout=subprocess.DEVNULL
    )
    killer = threading.Timer(900, proc.kill)
    killer.start()
    started = time.perf_counter()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        killer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {proc.returncode}")
    return {
        "command": " ".join(command[1:]),
        "seconds": time.perf_counter() - started,
        "peak_rss_mib": usage.ru_maxrss * 1024 / MIB,
    }


def run_probe(what: str) -> None:
    import django

    django.setup()
    if what == "tick":
        from geartrain.scheduler import ticker

        ticker.tick()
