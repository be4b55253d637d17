"""Real ``geartrain scheduler`` and ``worker --with-scheduler`` processes.

No test waits for the clock: schedules start in the past (``cron_base``) and end at
the last slot that is already due (``end_at``), so every slot is due at once and the
expected set of (schedule, slot) pairs is known in advance.
"""

from __future__ import annotations

import re
import signal
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest
from django.db import connection, transaction
from django.utils import timezone

from geartrain.models import (
    FireStatus,
    Job,
    JobStatus,
    Schedule,
    ScheduleDependency,
    ScheduleFire,
)
from tests.acceptance.workers import (
    WorkerFactory,
    WorkerProcess,
    assert_exit,
    wait_until,
)

T = "tests.testapp.tasks."
Slot = tuple[int, datetime]


def this_minute() -> datetime:
    """The start of the current minute: the latest slot of ``* * * * *`` that is due."""
    return timezone.now().replace(second=0, microsecond=0)


def minutely(count: int, minutes: int, prefix: str = "m") -> set[Slot]:
    """``count`` schedules with ``minutes`` due slots each; the (schedule, slot) set."""
    end = this_minute()
    base = end - timedelta(minutes=minutes)
    expected: set[Slot] = set()
    with transaction.atomic():
        for i in range(count):
            schedule = Schedule.objects.create(
                name=f"{prefix}{i:03d}",
                cron="* * * * *",
                timezone="UTC",
                task_path=T + "record",
                kwargs={"key": f"{prefix}{i}"},
                cron_base=base,
                end_at=end,
            )
            expected.update(
                (schedule.pk, base + timedelta(minutes=m))
                for m in range(1, minutes + 1)
            )
    return expected


def one_slot(name: str, task: str = "record", **kwargs: Any) -> Schedule:
    """A schedule whose single slot (the current minute's start) is due now."""
    end = this_minute()
    return Schedule.objects.create(
        name=name,
        cron="* * * * *",
        timezone="UTC",
        task_path=T + task,
        kwargs=kwargs or {"key": name},
        cron_base=end - timedelta(seconds=1),
        end_at=end,
    )


def fires() -> int:
    connection.close()
    return ScheduleFire.objects.count()


def all_ended() -> bool:
    connection.close()
    return not Schedule.objects.filter(due_at__isnull=False).exists()


def assert_fired_exactly_once(expected: set[Slot]) -> None:
    connection.close()
    rows = list(ScheduleFire.objects.values_list("schedule_id", "slot", "job_id"))
    counts = Counter((schedule, slot) for schedule, slot, _ in rows)
    assert set(counts) == expected
    assert set(counts.values()) == {1}
    jobs = [job for _, _, job in rows]
    assert None not in jobs
    assert len(set(jobs)) == len(expected)
    assert Job.objects.count() == len(expected)
    assert set(ScheduleFire.objects.values_list("status", flat=True)) == {
        FireStatus.FIRED
    }


def start_scheduler(factory: WorkerFactory, **settings: Any) -> WorkerProcess:
    """A ``geartrain scheduler`` process, once it is ready (its signal handlers set)."""
    process = factory.start("scheduler", settings=settings, log_level="INFO")
    wait_until(
        lambda: "started (interval" in process.log_text(), 30, "the scheduler to start"
    )
    return process


FIRED = re.compile(r"Scheduler fired (\d+) slots")


def reported_fires(process: WorkerProcess) -> int:
    """The slots a scheduler says it fired (at INFO)."""
    return sum(int(n) for n in FIRED.findall(process.log_text()))


def stop(*processes: WorkerProcess) -> None:
    for process in processes:
        process.signal(signal.SIGTERM)
    for process in processes:
        assert process.wait() == 0, process.stderr()


def marked(marks: Path, name: str = "record") -> list[str]:
    path = marks / name
    return path.read_text().split() if path.exists() else []


def is_pg() -> bool:
    return connection.vendor == "postgresql"


# (a) Two schedulers fire each slot once -----------------------------------------------


def test_two_schedulers_fire_every_slot_of_50_schedules_exactly_once(
    start_worker: WorkerFactory,
):
    # Small batches, so that both schedulers take part in the catch-up.
    settings = {"SCHEDULER_BATCH_SIZE": 5, "SCHEDULER_INTERVAL": 1.0}
    first = start_scheduler(start_worker, **settings)
    second = start_scheduler(start_worker, **settings)
    expected = minutely(50, 20)  # 1,000 slots, all due

    wait_until(all_ended, 120, "every schedule to end")
    stop(first, second)

    assert_fired_exactly_once(expected)
    assert reported_fires(first) + reported_fires(second) == len(expected)


# (b) kill -9 mid-work, then restart ---------------------------------------------------


def test_a_scheduler_killed_mid_work_loses_and_repeats_nothing(
    start_worker: WorkerFactory,
):
    expected = minutely(50, 40)  # 2,000 slots
    settings = {"SCHEDULER_BATCH_SIZE": 2}  # commit every 2 schedules (80 slots)
    doomed = start_scheduler(start_worker, **settings)
    wait_until(lambda: fires() >= 160, 120, "the first fires")
    doomed.kill_group()
    doomed.wait()
    done_before = fires()
    assert done_before < len(expected), "killed too late to prove anything"

    survivor = start_scheduler(start_worker, **settings)
    wait_until(all_ended, 120, "every schedule to end")
    stop(survivor)

    assert_fired_exactly_once(expected)


# (c) An edit is picked up without a restart -------------------------------------------


def test_an_edit_is_picked_up_while_the_scheduler_sleeps(start_worker: WorkerFactory):
    # PostgreSQL wakes the scheduler with NOTIFY long before its 30 s interval; the
    # other databases are re-read every SCHEDULER_INTERVAL.
    interval = 30.0 if is_pg() else 1.0
    first = one_slot("first")
    edited = Schedule.objects.create(
        name="edited", cron="* * * * *", task_path=T + "record", enabled=False
    )
    scheduler = start_scheduler(start_worker, SCHEDULER_INTERVAL=interval)
    # Its first tick fired "first"; nothing else is due: it sleeps for the interval.
    wait_until(first.fires.exists, 30, "the first tick")

    edited.refresh_from_db()
    edited.enabled = True
    edited.cron_base = this_minute() - timedelta(seconds=1)  # a slot due now
    edited.end_at = this_minute()
    edited.save()

    wait_until(edited.fires.exists, 10, "the edit to be picked up")
    stop(scheduler)
    fire = edited.fires.get()
    assert (fire.slot, fire.status) == (edited.end_at, FireStatus.FIRED)
    assert Job.objects.filter(pk=fire.job_id).exists()


# (d) worker --with-scheduler ----------------------------------------------------------

STARTED = re.compile(r"started scheduler pid=(\d+)")


def scheduler_pids(worker: WorkerProcess) -> list[int]:
    return [int(pid) for pid in STARTED.findall(worker.log_text())]


def succeeded(key: str) -> bool:
    connection.close()
    return Job.objects.filter(kwargs__key=key, status=JobStatus.SUCCEEDED).exists()


def test_worker_with_scheduler_fires_runs_replaces_and_stops(
    start_worker: WorkerFactory, marks: Path
):
    one_slot("before")
    worker = start_worker.start(
        "worker",
        "--concurrency",
        "1",
        "--with-scheduler",
        settings={"SCHEDULER_INTERVAL": 1.0},
        log_level="INFO",
    )
    wait_until(lambda: succeeded("before"), 30, "the scheduled job to run")
    assert len(worker.wait_for_children(2)) == 2  # one child and the scheduler
    (pid,) = scheduler_pids(worker)
    job = Job.objects.get(kwargs__key="before")
    assert job.attempt_log[0]["worker_id"].split("/")[1] != str(pid)

    # A scheduler that dies is replaced, and the new one fires.
    psutil.Process(pid).kill()
    wait_until(lambda: len(scheduler_pids(worker)) == 2, 30, "a new scheduler")
    one_slot("after")
    wait_until(lambda: succeeded("after"), 30, "the new scheduler's job to run")
    processes = worker.wait_for_children(2)

    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.stderr()
    assert not [p for p in processes if p.is_running() and p.status() != "zombie"]
    assert marked(marks) == ["before", "after"]
    assert "Scheduler pid=" in worker.log_text()


def test_the_scheduler_exits_when_its_worker_is_killed(start_worker: WorkerFactory):
    worker = start_worker.start(
        "worker", "--concurrency", "1", "--with-scheduler", log_level="INFO"
    )
    processes = worker.wait_for_children(2)
    wait_until(lambda: "started (interval" in worker.log_text(), 30, "the scheduler")
    worker.signal(signal.SIGKILL)  # the supervisor only
    worker.wait()

    assert_exit(processes, worker, 20)
    assert "its worker is gone; exiting" in worker.log_text()


# (e) A dependency holds a slot until its dependee succeeded ---------------------------


def test_a_held_slot_fires_only_after_its_dependency_succeeded(
    start_worker: WorkerFactory, marks: Path
):
    a = one_slot("a", task="sleep_then_record", key="a", seconds=1.0)
    b = one_slot("b")
    ScheduleDependency.objects.create(depender=b, dependee=a)
    start_scheduler(start_worker, SCHEDULER_INTERVAL=1.0, DEPENDENCY_RECHECK=0.2)
    start_worker("--concurrency", "2")

    wait_until(lambda: succeeded("b"), 60, "b's job to run")

    a_job = Job.objects.get(kwargs__key="a")
    b_job = Job.objects.get(kwargs__key="b")
    assert a_job.status == JobStatus.SUCCEEDED
    assert b_job.enqueued_at >= a_job.finished_at
    assert b.fires.get().fired_at >= a_job.finished_at
    assert marked(marks) == ["a", "b"]


# (f) Dropped database connections -----------------------------------------------------

DROP = {
    "postgresql": (
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    ),
    "mysql": (
        "SELECT id FROM information_schema.processlist "
        "WHERE db = DATABASE() AND id <> CONNECTION_ID()"
    ),
}


def drop_other_connections() -> int:
    """End every other session on the test database (as a server restart would)."""
    with connection.cursor() as cursor:
        cursor.execute(DROP[connection.vendor])
        sessions = [row[0] for row in cursor.fetchall()]
        if connection.vendor == "mysql":
            for session in sessions:
                cursor.execute(f"KILL {int(session)}")
    return len(sessions)


def test_the_scheduler_reconnects_after_its_connections_are_dropped(
    start_worker: WorkerFactory,
):
    if connection.vendor not in DROP:
        pytest.skip("SQLite has no server connections to drop")
    # On PostgreSQL the LISTEN connection must come back too: the interval is long.
    interval = 30.0 if is_pg() else 1.0
    first = one_slot("first")
    scheduler = start_scheduler(start_worker, SCHEDULER_INTERVAL=interval)
    wait_until(first.fires.exists, 30, "the first tick")

    assert drop_other_connections() >= 1
    after = one_slot("after")

    wait_until(after.fires.exists, 20, "a fire after the connections were dropped")
    stop(scheduler)
    assert_fired_exactly_once({(first.pk, first.end_at), (after.pk, after.end_at)})
