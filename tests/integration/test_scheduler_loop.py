"""The scheduler loop in this process: sleep bounds, stopping on a signal, and the
PostgreSQL listener that wakes it when a schedule is edited.

Real scheduler processes are in ``tests/acceptance/test_scheduler.py``.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from geartrain.models import FireStatus, Schedule
from geartrain.queue.notify import Listener, listener_for
from geartrain.scheduler.loop import (
    CHANNEL,
    LATE,
    MIN_WAIT,
    Scheduler,
    backoff_seconds,
    wait_seconds,
)

database = pytest.mark.django_db(transaction=True)

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def test_the_sleep_lasts_until_the_next_due_slot_within_bounds():
    assert wait_seconds(None, NOW, 60.0) == 60.0
    assert wait_seconds(NOW + timedelta(seconds=5), NOW, 60.0) == 5.0 + LATE
    assert wait_seconds(NOW + timedelta(hours=2), NOW, 60.0) == 60.0
    assert wait_seconds(NOW - timedelta(hours=2), NOW, 60.0) == MIN_WAIT
    assert wait_seconds(NOW, NOW, 60.0) == MIN_WAIT


def test_the_back_off_after_failed_ticks_grows_and_is_capped():
    assert [backoff_seconds(n, 60.0) for n in range(1, 8)] == [
        0.5,
        1.0,
        2.0,
        4.0,
        5.0,
        5.0,
        5.0,
    ]
    assert backoff_seconds(3, 0.3) == 0.3
    assert backoff_seconds(10_000, 60.0) == 5.0


@database
def test_sigterm_stops_the_scheduler_after_its_tick_with_status_0():
    now = timezone.now().replace(second=0, microsecond=0)
    schedule = Schedule.objects.create(
        name="due",
        cron="* * * * *",
        task_path="tests.testapp.tasks.record",
        kwargs={"key": "due"},
        cron_base=now - timedelta(seconds=1),
        end_at=now,
    )
    scheduler = Scheduler()
    # The scheduler sleeps SCHEDULER_INTERVAL (60 s) after its tick: the signal
    # must wake it.
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    previous = signal.getsignal(signal.SIGTERM)
    timer.start()
    try:
        assert scheduler.run() == 0
    finally:
        timer.cancel()
    assert scheduler.stopping
    assert scheduler.ticks >= 1
    assert schedule.fires.get().status == FireStatus.FIRED
    assert signal.getsignal(signal.SIGTERM) == previous  # handlers restored


# PostgreSQL LISTEN/NOTIFY -------------------------------------------------------------


def postgresql(test):
    only = pytest.mark.skipif(
        os.environ.get("GEARTRAIN_TEST_DB") != "postgresql", reason="PostgreSQL only"
    )
    return database(only(test))


@pytest.fixture
def listener() -> Iterator[Listener]:
    found = listener_for("default", CHANNEL)
    assert found is not None
    try:
        yield found
    finally:
        found.close()


def notify() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"NOTIFY {CHANNEL}")


@database
def test_only_postgresql_has_a_listener():
    found = listener_for("default", CHANNEL)
    assert (found is not None) == (connection.vendor == "postgresql")


def test_a_channel_must_be_an_identifier():
    with pytest.raises(
        ValueError, match=r"^'a; b' is not a plain identifier; use one\.$"
    ):
        Listener("default", "a; b")


@postgresql
def test_a_notification_wakes_the_listener(listener):
    assert listener.wait(0) is True  # connected now: anything before was missed
    assert listener.wait(0.05) is False
    notify()
    assert listener.wait(30) is True
    assert listener.wait(0) is False


@postgresql
def test_a_readable_wake_descriptor_ends_the_wait(listener):
    listener.wait(0)
    read, write = os.pipe()
    try:
        os.write(write, b"x")
        assert listener.wait(30, [read]) is False
    finally:
        os.close(read)
        os.close(write)


@postgresql
def test_schedule_edits_notify_and_bookkeeping_does_not(listener):
    listener.wait(0)
    schedule = Schedule.objects.create(
        name="edited", cron="0 * * * *", task_path="tests.testapp.tasks.noop"
    )
    assert listener.wait(30) is True
    Schedule.objects.filter(pk=schedule.pk).update(total_runs=3, held_reason="x")
    assert listener.wait(0.2) is False
    schedule.cron = "30 * * * *"
    schedule.save()
    assert listener.wait(30) is True


@postgresql
def test_a_dropped_listen_connection_reports_a_possible_miss_and_reconnects(listener):
    listener.wait(0)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    assert listener.wait(30) is True  # the failure: a notification may be lost
    assert listener.wait(0) is True  # reconnected
    assert listener.connected
    notify()
    assert listener.wait(30) is True
