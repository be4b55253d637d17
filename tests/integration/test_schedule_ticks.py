"""The scheduler's tick against a simulated clock: slots, misfires, bookkeeping.

``ticker.tick(now)`` is driven with explicit instants, so catch-up, coalesce and skip
are checked without waiting. The jobs and runs it creates are real rows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from geartrain.models import (
    FireStatus,
    Job,
    JobStatus,
    PipelineRun,
    Schedule,
    ScheduleFire,
)
from geartrain.scheduler import outcomes, ticker
from tests.acceptance.pipelines import make_pipeline

pytestmark = pytest.mark.django_db(transaction=True)

T = "tests.testapp.tasks."
BASE = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def every_5_minutes(**fields) -> Schedule:
    options = {
        "name": "every-5",
        "cron": "*/5 * * * *",
        "timezone": "UTC",
        "task_path": T + "record",
        "kwargs": {"key": "tick"},
        "cron_base": BASE,
    }
    options.update(fields)
    return Schedule.objects.create(**options)


def fired_slots(schedule: Schedule) -> list[datetime]:
    rows = schedule.fires.filter(status=FireStatus.FIRED).order_by("slot")
    return [row.slot for row in rows]


def test_the_first_slot_is_the_first_cron_instant_after_cron_base():
    schedule = every_5_minutes(cron_base=BASE + timedelta(minutes=2))
    assert schedule.next_slot == BASE + timedelta(minutes=5)
    assert schedule.due_at == schedule.next_slot


def test_a_blank_cron_base_means_now():
    schedule = every_5_minutes(cron_base=None)
    assert schedule.cron_base is not None
    assert schedule.next_slot > schedule.cron_base


def test_nothing_fires_before_the_slot():
    schedule = every_5_minutes()
    report = ticker.tick(BASE + timedelta(minutes=4, seconds=59))
    assert report.fired == 0
    assert not ScheduleFire.objects.exists()
    assert report.next_due == schedule.next_slot


def test_a_due_slot_fires_one_job_with_the_arguments_and_bookkeeping():
    schedule = every_5_minutes(queue="default", priority=7)
    now = BASE + timedelta(minutes=5, seconds=1)
    report = ticker.tick(now)
    assert report.fired == 1
    job = Job.objects.get()
    assert (job.task_path, job.kwargs, job.priority) == (
        T + "record",
        {"key": "tick"},
        7,
    )
    fire = ScheduleFire.objects.get()
    assert (fire.slot, fire.job_id, fire.status) == (
        BASE + timedelta(minutes=5),
        job.pk,
        FireStatus.FIRED,
    )
    schedule.refresh_from_db()
    assert schedule.last_slot == BASE + timedelta(minutes=5)
    assert schedule.last_fired_at == now
    assert schedule.total_runs == 1
    assert schedule.next_slot == BASE + timedelta(minutes=10)
    assert ticker.tick(now).fired == 0  # the same slot never fires twice


def test_catch_up_fires_each_missed_slot_in_order():
    schedule = every_5_minutes()
    # The scheduler was down for an hour: 12 slots, 08:05 ... 09:00.
    report = ticker.tick(BASE + timedelta(hours=1, seconds=1))
    assert report.fired == 12
    assert fired_slots(schedule) == [
        BASE + timedelta(minutes=5 * i) for i in range(1, 13)
    ]
    assert Job.objects.count() == 12


def test_catch_up_stops_at_its_limit_and_records_the_rest_as_skipped():
    schedule = every_5_minutes(catch_up_limit=3)
    ticker.tick(BASE + timedelta(hours=1, seconds=1))
    assert fired_slots(schedule) == [BASE + timedelta(minutes=m) for m in (50, 55, 60)]
    skipped = schedule.fires.get(status=FireStatus.SKIPPED)
    assert skipped.slot == BASE + timedelta(minutes=45)
    assert skipped.reason == (
        "9 slots from 2026-03-02T08:05:00+00:00 to 2026-03-02T08:45:00+00:00 "
        "beyond the catch-up limit of 3 slots"
    )


def test_skip_drops_late_slots_and_keeps_those_within_grace():
    schedule = every_5_minutes(misfire="skip", grace_seconds=60)
    ticker.tick(BASE + timedelta(hours=1, seconds=30))  # 09:00 is 30 s late
    assert fired_slots(schedule) == [BASE + timedelta(hours=1)]
    skipped = schedule.fires.get(status=FireStatus.SKIPPED)
    assert skipped.reason == (
        "11 slots from 2026-03-02T08:05:00+00:00 to 2026-03-02T08:55:00+00:00 "
        "more than 60 s late (misfire policy skip)"
    )
    schedule.refresh_from_db()
    assert schedule.next_slot == BASE + timedelta(hours=1, minutes=5)


THIRTY_DAYS = BASE + timedelta(days=30)


@pytest.mark.parametrize(
    ("options", "tick_at", "fired", "last_dropped", "reason"),
    [
        pytest.param(
            {"misfire": "skip", "grace_seconds": 1800, "catch_up_limit": 2},
            BASE + timedelta(hours=1, seconds=30),  # 08:35 to 09:00 within grace
            [BASE + timedelta(minutes=m) for m in (55, 60)],
            BASE + timedelta(minutes=50),
            "10 slots from 2026-03-02T08:05:00+00:00 to 2026-03-02T08:50:00+00:00 "
            "more than 1800 s late (misfire policy skip); "
            "beyond the catch-up limit of 2 slots",
            id="skip fires no more than the limit within grace",
        ),
        pytest.param(
            {"misfire": "coalesce", "grace_seconds": 60},
            THIRTY_DAYS + timedelta(seconds=1),  # 8,640 slots, all but the last late
            [THIRTY_DAYS - timedelta(minutes=5), THIRTY_DAYS],
            THIRTY_DAYS - timedelta(minutes=10),
            "at least 2002 slots from 2026-03-02T08:05:00+00:00 to "
            "2026-04-01T07:50:00+00:00 coalesced into the run of slot "
            "2026-04-01T07:55:00+00:00",
            id="a backlog past the scan limit is counted as at least",
        ),
    ],
)
def test_the_dropped_slots_of_a_backlog_are_one_skipped_fire(
    options: dict[str, Any],
    tick_at: datetime,
    fired: list[datetime],
    last_dropped: datetime,
    reason: str,
):
    schedule = every_5_minutes(**options)
    ticker.tick(tick_at)
    assert fired_slots(schedule) == fired
    skipped = schedule.fires.get(status=FireStatus.SKIPPED)
    assert (skipped.slot, skipped.reason) == (last_dropped, reason)


def test_coalesce_runs_once_for_the_latest_missed_slot():
    schedule = every_5_minutes(misfire="coalesce", grace_seconds=60)
    ticker.tick(BASE + timedelta(hours=1, minutes=2))  # all 12 slots are late
    assert fired_slots(schedule) == [BASE + timedelta(hours=1)]
    assert Job.objects.count() == 1
    skipped = schedule.fires.get(status=FireStatus.SKIPPED)
    assert skipped.reason == (
        "11 slots from 2026-03-02T08:05:00+00:00 to 2026-03-02T08:55:00+00:00 "
        "coalesced into the run of slot 2026-03-02T09:00:00+00:00"
    )
    ticker.tick(BASE + timedelta(hours=1, minutes=5, seconds=1))
    assert fired_slots(schedule)[-1] == BASE + timedelta(hours=1, minutes=5)


@pytest.mark.parametrize(
    ("day", "utc_hour"), [(datetime(2026, 7, 1), 13), (datetime(2026, 1, 15), 14)]
)
def test_nine_in_new_york_is_13_utc_in_summer_and_14_in_winter(day, utc_hour):
    base = day.replace(tzinfo=UTC)
    schedule = every_5_minutes(
        cron="0 9 * * *", timezone="America/New_York", cron_base=base
    )
    assert schedule.next_slot == base.replace(hour=utc_hour)


def test_an_ended_schedule_fires_no_more():
    schedule = every_5_minutes(end_at=BASE + timedelta(minutes=10))
    ticker.tick(BASE + timedelta(hours=1))
    assert fired_slots(schedule) == [BASE + timedelta(minutes=m) for m in (5, 10)]
    schedule.refresh_from_db()
    assert (schedule.next_slot, schedule.due_at) == (None, None)


def test_a_disabled_schedule_fires_nothing_and_enabling_does_not_fire_the_past():
    schedule = every_5_minutes(enabled=False)
    assert schedule.due_at is None
    assert ticker.tick(BASE + timedelta(hours=1)).fired == 0
    schedule.enabled = True
    schedule.save()
    assert schedule.next_slot > BASE + timedelta(days=1)  # counted from the real now


def test_a_pipeline_target_launches_a_run_with_its_runtime_arguments():
    pipeline = make_pipeline("nightly", {"s": {"steps": {"a": {}}}})
    schedule = Schedule.objects.create(
        name="nightly",
        cron="0 2 * * *",
        timezone="UTC",
        pipeline=pipeline,
        kwargs={"day": "today"},
        cron_base=BASE,
    )
    ticker.tick(BASE + timedelta(days=1))
    run = PipelineRun.objects.get()
    assert (run.trigger, run.arguments) == ("schedule", {"day": "today"})
    assert schedule.fires.get().pipeline_run_id == run.pk


def test_a_pipeline_that_is_still_running_makes_the_slot_skipped_with_its_reason():
    pipeline = make_pipeline("busy", {"s": {"steps": {"a": {}}}})
    schedule = Schedule.objects.create(
        name="busy", cron="*/5 * * * *", pipeline=pipeline, cron_base=BASE
    )
    ticker.tick(BASE + timedelta(minutes=10, seconds=1))
    first, second = schedule.fires.order_by("slot")
    run = PipelineRun.objects.get()
    assert first.pipeline_run_id == run.pk
    assert second.status == FireStatus.SKIPPED
    assert second.reason == (
        f"Pipeline 'busy' is already running (run {run.pk}) and runs one at a time. "
        f"Wait for run {run.pk} to finish, or cancel it."
    )


def test_skip_if_running_skips_while_the_previous_job_waits():
    schedule = every_5_minutes(skip_if_running=True)
    ticker.tick(BASE + timedelta(minutes=10, seconds=1))
    first, second = schedule.fires.order_by("slot")
    assert second.status == FireStatus.SKIPPED
    assert second.reason == (
        f"job {first.job_id} of an earlier fire is still ready and the schedule "
        "skips while its previous job runs"
    )


def test_outcomes_copy_the_jobs_final_status_and_finish_time():
    schedule = every_5_minutes()
    ticker.tick(BASE + timedelta(minutes=5))
    job = Job.objects.get()
    finished = BASE + timedelta(minutes=6)
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.SUCCEEDED, finished_at=finished
    )
    assert outcomes.sync(BASE + timedelta(minutes=7)) == 1
    fire = schedule.fires.get()
    assert (fire.status, fire.finished_at) == (FireStatus.SUCCEEDED, finished)
