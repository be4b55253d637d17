"""More of the tick (SPEC rows 63-65, 80, 82, 86), DST, run now and backfill.

Like test_schedule_ticks.py, ``ticker.tick(now)`` is driven with explicit instants; the
jobs, runs and fires it creates are real rows. The races use one connection per thread.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from geartrain.models import (
    FireKind,
    FireStatus,
    Job,
    PipelineRun,
    Schedule,
    ScheduleFire,
)
from geartrain.scheduler import api, firing, loop, ticker
from tests.acceptance.pipelines import make_pipeline

pytestmark = pytest.mark.django_db(transaction=True)

T = "tests.testapp.tasks."
BASE = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def at(minutes: float, base: datetime = BASE) -> datetime:
    return base + timedelta(minutes=minutes)


def make(name: str = "every-5", **fields) -> Schedule:
    options = {
        "name": name,
        "cron": "*/5 * * * *",
        "timezone": "UTC",
        "task_path": T + "record",
        "kwargs": {"key": name},
        "cron_base": BASE,
    }
    options.update(fields)
    return Schedule.objects.create(**options)


def fired(schedule: Schedule) -> list[datetime]:
    rows = schedule.fires.filter(status=FireStatus.FIRED).order_by("slot")
    return [row.slot for row in rows]


def every_minute(start: datetime, end: datetime) -> None:
    """Tick once a minute from ``start`` to ``end``, as a punctual scheduler would."""
    moment = start
    while moment <= end:
        ticker.tick(moment)
        moment += timedelta(minutes=1)


# --- catch up (row 63) ------------------------------------------------------------


def test_catch_up_enqueues_the_missed_slots_in_slot_order():
    schedule = make()
    ticker.tick(at(60) + SECOND)
    fires = list(schedule.fires.order_by("job_id"))
    assert [fire.slot for fire in fires] == [at(5 * i) for i in range(1, 13)]
    assert [fire.fired_at for fire in fires] == [at(60) + SECOND] * 12


def test_catch_up_resumes_where_the_last_tick_stopped():
    schedule = make()
    ticker.tick(at(60) + SECOND)
    ticker.tick(at(90) + SECOND)  # down again for half an hour
    assert fired(schedule) == [at(5 * i) for i in range(1, 19)]
    row = Schedule.objects.get()
    assert (row.total_runs, row.last_slot, row.next_slot) == (18, at(90), at(95))


def test_catch_up_of_a_pipeline_that_allows_overlap_launches_a_run_per_slot():
    pipeline = make_pipeline("etl", {"s": {"steps": {"a": {}}}}, overlap="allow")
    schedule = make(task_path="", kwargs={}, pipeline=pipeline)
    ticker.tick(at(60) + SECOND)
    fires = list(schedule.fires.order_by("pipeline_run_id"))
    assert [fire.slot for fire in fires] == [at(5 * i) for i in range(1, 13)]
    assert PipelineRun.objects.filter(trigger="schedule").count() == 12


# --- skip and coalesce at their boundaries (rows 64, 65) ---------------------------


@pytest.mark.parametrize(("late", "runs"), [(30, True), (60, True), (61, False)])
def test_skip_runs_a_slot_up_to_grace_seconds_late(late, runs):
    schedule = make(misfire="skip", grace_seconds=60)
    report = ticker.tick(at(5) + timedelta(seconds=late))
    assert fired(schedule) == ([at(5)] if runs else [])
    assert report.skipped == (0 if runs else 1)
    if not runs:
        assert schedule.fires.get().reason == (
            "1 slot more than 60 s late (misfire policy skip)"
        )
    assert Schedule.objects.get().next_slot == at(10)


def test_coalesce_runs_the_latest_late_slot_and_the_slots_within_grace():
    schedule = make(misfire="coalesce", grace_seconds=60)
    ticker.tick(at(60) + timedelta(seconds=30))  # 09:00 is on time, the rest late
    assert fired(schedule) == [at(55), at(60)]
    assert schedule.fires.get(status=FireStatus.SKIPPED).reason == (
        "10 slots from 2026-03-02T08:05:00+00:00 to 2026-03-02T08:50:00+00:00 "
        "coalesced into the run of slot 2026-03-02T08:55:00+00:00"
    )


def test_coalesce_of_a_single_late_slot_runs_it_and_drops_nothing():
    schedule = make(misfire="coalesce", grace_seconds=60)
    report = ticker.tick(at(7))
    assert fired(schedule) == [at(5)]
    assert report.skipped == 0
    assert not schedule.fires.filter(status=FireStatus.SKIPPED).exists()


# --- a target that cannot start ----------------------------------------------------


def test_a_target_that_cannot_start_skips_its_slot_and_the_tick_goes_on():
    # create() does not validate: as if the task was removed from the code since.
    gone = make("gone", task_path=T + "removed_since", kwargs={})
    other = make("other")

    report = ticker.tick(at(5))

    assert (report.fired, report.skipped) == (1, 1)
    assert fired(other) == [at(5)]
    fire = gone.fires.get()
    assert (fire.status, fire.job_id, fire.reason) == (
        FireStatus.SKIPPED,
        None,
        "the target could not start: Task 'tests.testapp.tasks.removed_since' is not "
        "registered. Define it with @task in the 'tasks' module of an installed app, "
        "or list its module in GEARTRAIN['TASK_MODULES'].",
    )
    row = Schedule.objects.get(pk=gone.pk)
    assert (row.next_slot, row.held_reason) == (at(10), "")


def test_a_queue_no_longer_configured_skips_the_slot_with_the_reason():
    schedule = make(queue="gpu")
    ticker.tick(at(5))
    assert schedule.fires.get().reason == (
        "the target could not start: Queue 'gpu' of task 'tests.testapp.tasks.record' "
        "is not configured for backend 'default' (configured: 'default', 'emails', "
        "'reports'). Add it to TASKS['default']['QUEUES'] or use a configured queue."
    )
    assert not Job.objects.exists()


# --- daylight saving time ----------------------------------------------------------

# Europe/Berlin: 2026-03-29 02:00 CET -> 03:00 CEST at 01:00 UTC;
# 2026-10-25 03:00 CEST -> 02:00 CET at 01:00 UTC.


def utc(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        # 02:30 does not exist that night: it fires once, at 03:00 CEST.
        ("30 2 * * *", [utc(3, 29, 1)]),
        # 02:00, 02:30 and 03:00 share 03:00 CEST: one fire.
        (
            "*/30 * * * *",
            [utc(3, 29, 0), utc(3, 29, 0, 30), utc(3, 29, 1), utc(3, 29, 1, 30)],
        ),
    ],
)
def test_slots_in_the_skipped_hour_fire_once(cron, expected):
    schedule = make(cron=cron, timezone="Europe/Berlin", cron_base=utc(3, 28, 23, 59))
    every_minute(utc(3, 29, 0), utc(3, 29, 1, 45))
    assert fired(schedule) == expected
    assert schedule.fires.count() == len(expected)  # nothing late, nothing dropped


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        # 02:30 happens twice: it fires at the first, 02:30 CEST.
        ("30 2 * * *", [utc(10, 25, 0, 30)]),
        # The second pass through 02:00-03:00 fires nothing.
        ("*/30 * * * *", [utc(10, 25, 0), utc(10, 25, 0, 30), utc(10, 25, 2)]),
    ],
)
def test_slots_in_the_repeated_hour_fire_once(cron, expected):
    schedule = make(cron=cron, timezone="Europe/Berlin", cron_base=utc(10, 24, 23, 59))
    every_minute(utc(10, 25, 0), utc(10, 25, 2, 10))
    assert fired(schedule) == expected
    assert schedule.fires.count() == len(expected)


def test_a_scheduler_down_across_the_change_catches_up_each_slot_once():
    schedule = make(
        cron="*/30 * * * *", timezone="Europe/Berlin", cron_base=utc(3, 28, 23, 59)
    )
    ticker.tick(utc(3, 29, 3))
    assert fired(schedule) == [
        utc(3, 29, 0),
        utc(3, 29, 0, 30),
        utc(3, 29, 1),
        utc(3, 29, 1, 30),
        utc(3, 29, 2),
        utc(3, 29, 2, 30),
        utc(3, 29, 3),
    ]


# --- a restarted scheduler never fires a slot twice (row 80) ------------------------


def test_bookkeeping_lost_in_a_crash_does_not_fire_the_slots_again():
    lost, other = make("lost"), make("other", cron="*/2 * * * *", cron_base=at(10))
    ticker.tick(at(10) + SECOND)  # "lost" fires 08:05 and 08:10
    assert Job.objects.count() == 2
    # As if the process died after firing but before writing the next slot.
    Schedule.objects.filter(pk=lost.pk).update(next_slot=at(5), due_at=at(5))

    report = ticker.tick(at(12))

    assert report.fired == 1  # "other" at 08:12; "lost" collides twice, quietly
    assert fired(lost) == [at(5), at(10)]
    assert fired(other) == [at(12)]
    assert Job.objects.count() == 3
    row = Schedule.objects.get(pk=lost.pk)
    assert (row.next_slot, row.due_at, row.held_reason, row.total_runs) == (
        at(15),
        at(15),
        "",
        2,
    )


def test_firing_a_fired_slot_again_returns_none_and_creates_nothing():
    schedule = make()
    first = firing.fire(schedule, at(5), kind=FireKind.CRON, now=at(5))
    again = firing.fire(schedule, at(5), kind=FireKind.CRON, now=at(6))
    assert first is not None
    assert again is None
    assert (ScheduleFire.objects.count(), Job.objects.count()) == (1, 1)
    assert firing.record_skip(schedule, at(5), "late", now=at(6)) is None


# --- next due and the sleep bound (row 82) -----------------------------------------


def test_the_report_gives_the_earliest_due_and_the_sleep_is_bounded_by_it():
    make("every-5")
    make("hourly", cron="0 * * * *")
    make("off", enabled=False)
    now = at(5) + SECOND

    report = ticker.tick(now)

    assert report.next_due == at(10) == ticker.next_due()
    assert loop.wait_seconds(report.next_due, now, 60.0) == 60.0
    assert loop.wait_seconds(report.next_due, at(9.5), 60.0) == 30.0 + loop.LATE
    assert loop.wait_seconds(report.next_due, at(10), 60.0) == loop.MIN_WAIT


def test_with_every_schedule_disabled_there_is_no_next_due():
    make(enabled=False)
    report = ticker.tick(at(5))
    assert report.next_due is None
    assert loop.wait_seconds(report.next_due, at(5), 60.0) == 60.0


# --- racing schedulers (row 86) -----------------------------------------------------


def race(threads: int, work) -> list[BaseException]:
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            barrier.wait(timeout=30)
            work(n)
        except BaseException as exc:  # reported by the caller
            errors.append(exc)
        finally:
            connections.close_all()

    started = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join(timeout=120)
    return errors


def test_two_schedulers_racing_fire_each_slot_once():
    Schedule.objects.bulk_create(
        Schedule(
            name=f"s{n:03}",
            cron="*/5 * * * *",
            timezone="UTC",
            task_path=T + "record",
            kwargs={"key": str(n)},
            cron_base=BASE,
            next_slot=at(5),
            due_at=at(5),
        )
        for n in range(200)
    )
    reports: list[ticker.TickReport] = []

    assert race(2, lambda n: reports.append(ticker.tick(at(15) + SECOND))) == []

    assert sum(report.fired for report in reports) == 600
    assert ScheduleFire.objects.count() == 600
    assert Job.objects.count() == 600
    assert set(Schedule.objects.values_list("total_runs", "next_slot")) == {(3, at(20))}


@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite has one writer")
def test_two_fires_of_the_same_slot_at_once_make_one_fire_and_one_job():
    schedule = make()
    rows: list[ScheduleFire | None] = []

    def fire(n: int) -> None:
        rows.append(firing.fire(schedule, at(5), kind=FireKind.CRON, now=at(5)))

    assert race(4, fire) == []
    assert sorted(row is None for row in rows) == [False, True, True, True]
    assert (ScheduleFire.objects.count(), Job.objects.count()) == (1, 1)


# --- run now ------------------------------------------------------------------------


def test_run_now_fires_once_per_call_without_touching_the_timing():
    schedule = make(enabled=False)
    timing = Schedule.objects.values("next_slot", "due_at", "last_slot").get()

    first = api.run_now("every-5", launched_by="ops")
    second = api.run_now(schedule.pk)

    assert (first.kind, first.slot, first.status, first.launched_by) == (
        FireKind.MANUAL,
        None,
        FireStatus.FIRED,
        "ops",
    )
    assert first.job.kwargs == {"key": "every-5"}
    assert second.pk != first.pk
    assert Job.objects.count() == 2
    assert Schedule.objects.values("next_slot", "due_at", "last_slot").get() == timing


def test_run_now_of_an_unknown_schedule_names_it():
    with pytest.raises(api.ScheduleNotFound) as info:
        api.run_now("nope")
    assert str(info.value) == (
        "No schedule is called 'nope'. Look up schedule names in the admin, under "
        "Schedules, or with `geartrain schedules`."
    )


# --- backfill -----------------------------------------------------------------------


def test_backfill_fires_each_slot_of_the_interval_at_most_once():
    schedule = make(cron_base=at(60))

    report = api.backfill(schedule, at(0), at(20), launched_by="ops")

    assert [row.slot for row in report.fired] == [at(m) for m in (0, 5, 10, 15, 20)]
    assert {(row.kind, row.launched_by) for row in report.fired} == {
        (FireKind.BACKFILL, "ops")
    }
    assert report.already == []

    again = api.backfill(schedule, at(10), at(30))
    assert [row.slot for row in again.fired] == [at(25), at(30)]
    assert again.already == [at(10), at(15), at(20)]
    assert Job.objects.count() == 7


def test_the_scheduler_does_not_fire_slots_a_backfill_fired():
    schedule = make()
    api.backfill(schedule, at(5), at(10))
    report = ticker.tick(at(15) + SECOND)
    assert report.fired == 1
    assert fired(schedule) == [at(5), at(10), at(15)]
    assert Job.objects.count() == 3


def test_a_backfill_ending_in_the_future_is_refused():
    make()
    end = timezone.now() + timedelta(hours=1)
    with pytest.raises(api.InvalidBackfill) as info:
        api.backfill("every-5", at(0), end)
    assert str(info.value) == (
        f"The backfill end {end.isoformat()} is in the future. Backfill only past "
        "slots: use an end at or before now; later slots fire on schedule."
    )


def test_a_backfill_starting_after_its_end_is_refused():
    make()
    with pytest.raises(api.InvalidBackfill) as info:
        api.backfill("every-5", at(20), at(10))
    assert str(info.value) == (
        "The backfill start 2026-03-02T08:20:00+00:00 is after its end "
        "2026-03-02T08:10:00+00:00. Swap them."
    )


def test_a_backfill_of_too_many_slots_is_refused_and_fires_nothing():
    make(cron="* * * * *")
    with pytest.raises(api.InvalidBackfill) as info:
        api.backfill("every-5", at(0), at(0) + timedelta(days=7))
    assert str(info.value) == (
        "The interval 2026-03-02T08:00:00+00:00 to 2026-03-09T08:00:00+00:00 holds "
        "more than 10000 slots of '* * * * *'. Backfill a shorter interval."
    )
    assert not ScheduleFire.objects.exists()
