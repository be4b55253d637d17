"""``geartrain scheduler --once``, ``schedules``, ``run-now``, ``enable``, ``disable``,
``toggle``, ``backfill`` and ``worker --with-scheduler`` options; output exact.

The long-running ``geartrain scheduler`` and ``worker --with-scheduler`` run as real
processes in ``tests/acceptance/test_scheduler.py``.
"""

from __future__ import annotations

import getpass
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from geartrain.management.subcommands.schedules import utc
from geartrain.models import (
    FireKind,
    FireStatus,
    Job,
    PipelineRun,
    Schedule,
    ScheduleFire,
)
from tests.acceptance.pipelines import make_pipeline

pytestmark = pytest.mark.django_db

T = "tests.testapp.tasks."
FUTURE = datetime(2030, 1, 1, tzinfo=UTC)
NOT_FOUND = (
    "No schedule is called 'nope'. Look up schedule names in the admin, under "
    "Schedules, or with `geartrain schedules`."
)


def run(*args: str) -> list[str]:
    out = StringIO()
    call_command("geartrain", *args, stdout=out)
    return out.getvalue().splitlines()


def error_of(*args: str) -> str:
    with pytest.raises(CommandError) as info:
        run(*args)
    return str(info.value)


def make(name: str = "hourly", **fields) -> Schedule:
    options = {
        "name": name,
        "cron": "0 * * * *",
        "timezone": "UTC",
        "task_path": T + "record",
        "kwargs": {"key": name},
        "cron_base": FUTURE,
    }
    options.update(fields)
    return Schedule.objects.create(**options)


def user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "command"


# scheduler --once ---------------------------------------------------------------------


def test_scheduler_once_with_nothing_due_says_so():
    assert run("scheduler", "--once") == [
        "Tick: 0 due schedule(s), 0 slot(s) fired, 0 skipped, 0 held.",
        "Next due: none (every schedule is disabled or ended).",
    ]


def test_scheduler_once_fires_the_due_slots_and_prints_the_next_due_time():
    now = timezone.now()
    # Daily at 00:00 UTC since three days ago: three missed slots, caught up.
    base = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)
    schedule = make("daily", cron="0 0 * * *", cron_base=base + timedelta(seconds=1))
    later = make("later")  # not due: its first slot is in 2030

    lines = run("scheduler", "--once")

    schedule.refresh_from_db()
    assert lines == [
        "Tick: 1 due schedule(s), 3 slot(s) fired, 0 skipped, 0 held.",
        f"Next due: {utc(schedule.next_slot)} UTC",
    ]
    assert schedule.next_slot < later.next_slot
    slots = [f.slot for f in schedule.fires.order_by("slot")]
    assert slots == [base + timedelta(days=d) for d in (1, 2, 3)]
    assert Job.objects.count() == 3


# schedules ----------------------------------------------------------------------------


def test_schedules_with_none_says_so():
    assert run("schedules") == ["No schedules."]


def test_schedules_lists_timing_target_and_bookkeeping():
    pipeline = make_pipeline("etl", {"s": {"steps": {"a": {}}}})
    make("b-nightly", cron="30 2 * * *", timezone="Europe/Paris", pipeline=pipeline,
         task_path="", kwargs={})  # fmt: skip
    held = make("a-report", cron="*/15 * * * *")
    Schedule.objects.filter(pk=held.pk).update(
        last_slot=datetime(2029, 12, 31, 23, 45, tzinfo=UTC),
        total_runs=1234,
        held_reason="waiting for a run of schedule 'b-nightly'",
    )
    make("c-off", enabled=False)

    assert run("schedules") == [
        "Schedules: 3 (times in UTC)",
        "  name       cron          time zone     target                         "
        "  enabled  next slot            last slot            runs  held because",
        "  a-report   */15 * * * *  UTC           task tests.testapp.tasks.record"
        "  yes      2030-01-01 00:15:00  2029-12-31 23:45:00  1234  "
        "waiting for a run of schedule 'b-nightly'",
        "  b-nightly  30 2 * * *    Europe/Paris  pipeline etl                   "
        "  yes      2030-01-01 01:30:00  -                       0",
        "  c-off      0 * * * *     UTC           task tests.testapp.tasks.record"
        "  no       -                    -                       0",
    ]


# run-now ------------------------------------------------------------------------------


def test_run_now_enqueues_the_task_once_and_keeps_the_timing():
    schedule = make(enabled=False, queue="emails", priority=3)

    lines = run("run-now", "hourly")

    job = Job.objects.get()
    assert lines == [f"Schedule 'hourly' fired now: job {job.pk}."]
    assert (job.task_path, job.kwargs, job.queue, job.priority) == (
        T + "record",
        {"key": "hourly"},
        "emails",
        3,
    )
    fire = ScheduleFire.objects.get()
    assert (fire.slot, fire.kind, fire.status, fire.launched_by) == (
        None,
        FireKind.MANUAL,
        FireStatus.FIRED,
        user(),
    )
    schedule.refresh_from_db()
    assert (schedule.enabled, schedule.next_slot, schedule.due_at) == (
        False,
        None,
        None,
    )


def test_run_now_launches_a_pipeline_with_the_schedules_arguments():
    pipeline = make_pipeline("etl", {"s": {"steps": {"a": {}}}})
    make("etl-daily", pipeline=pipeline, task_path="", kwargs={"day": "today"})

    lines = run("run-now", "etl-daily")

    pipeline_run = PipelineRun.objects.get()
    assert lines == [
        f"Schedule 'etl-daily' fired now: run {pipeline_run.pk} of pipeline 'etl'."
    ]
    assert (pipeline_run.trigger, pipeline_run.arguments) == (
        "manual",
        {"day": "today"},
    )


def test_run_now_accepts_a_schedule_id():
    schedule = make()
    run("run-now", str(schedule.pk))
    assert schedule.fires.count() == 1


def test_run_now_that_the_target_refuses_is_an_error_and_a_skipped_fire():
    make(skip_if_running=True)
    first = run("run-now", "hourly")
    job = Job.objects.get()
    assert first == [f"Schedule 'hourly' fired now: job {job.pk}."]

    assert error_of("run-now", "hourly") == (
        f"Run now of schedule 'hourly' was skipped (the skip is recorded): job "
        f"{job.pk} of an earlier fire is still ready and the schedule skips while "
        f"its previous job runs"
    )
    assert ScheduleFire.objects.filter(status=FireStatus.SKIPPED).count() == 1
    assert Job.objects.count() == 1


def test_run_now_of_an_unknown_schedule():
    assert error_of("run-now", "nope") == NOT_FOUND


# enable, disable, toggle --------------------------------------------------------------


def test_enable_counts_the_next_slot_from_now():
    make("off", enabled=False, cron_base=datetime(2020, 1, 1, tzinfo=UTC))
    make("on")

    lines = run("enable", "off", "on")

    off = Schedule.objects.get(name="off")
    assert off.enabled
    assert off.next_slot > timezone.now()  # the past is not fired
    assert lines == [
        f"Schedule 'off' enabled; next slot {utc(off.next_slot)} UTC.",
        "Schedule 'on' was already enabled.",
        "Enabled 1 schedule(s).",
    ]


def test_enable_of_an_ended_schedule_says_it_has_ended():
    past = datetime(2020, 1, 1, tzinfo=UTC)
    make("ended", enabled=False, cron_base=past, end_at=past + timedelta(hours=5))

    assert run("enable", "ended") == [
        "Schedule 'ended' enabled; it has ended (no slot after its end).",
        "Enabled 1 schedule(s).",
    ]


def test_disable_clears_the_next_slot():
    make("a")
    make("b", enabled=False)

    assert run("disable", "a", "b", "a") == [
        "Schedule 'a' disabled.",
        "Schedule 'b' was already disabled.",
        "Disabled 1 schedule(s).",
    ]
    a = Schedule.objects.get(name="a")
    assert (a.enabled, a.next_slot, a.due_at) == (False, None, None)


def test_toggle_flips_each_schedule():
    make("a")
    make("b", enabled=False)

    lines = run("toggle", "a", "b")

    b = Schedule.objects.get(name="b")
    assert lines == [
        "Schedule 'a' disabled.",
        f"Schedule 'b' enabled; next slot {utc(b.next_slot)} UTC.",
        "Toggled 2 schedule(s).",
    ]
    assert not Schedule.objects.get(name="a").enabled


@pytest.mark.parametrize("action", ["enable", "disable", "toggle"])
def test_an_unknown_name_changes_nothing(action):
    make("a", enabled=False)
    make("b")

    assert error_of(action, "a", "nope", "b") == f"{NOT_FOUND} Nothing was changed."
    assert [s.enabled for s in Schedule.objects.order_by("name")] == [False, True]


# backfill -----------------------------------------------------------------------------


def paris_nine() -> Schedule:
    """09:00 in Paris every day: 08:00 UTC in winter."""
    return make("paris", cron="0 9 * * *", timezone="Europe/Paris")


def test_backfill_reads_naive_times_in_the_schedules_zone_and_fires_each_slot():
    paris_nine()

    lines = run("backfill", "paris", "--from", "2026-01-10", "--to", "2026-01-12T09:00")

    jobs = list(Job.objects.order_by("pk").values_list("pk", flat=True))
    assert lines == [
        "Backfill of schedule 'paris' from 2026-01-09 23:00:00 to 2026-01-12 "
        "08:00:00 UTC: 3 slot(s) fired, 0 already handled.",
        f"  2026-01-10 08:00:00 fired: job {jobs[0]}",
        f"  2026-01-11 08:00:00 fired: job {jobs[1]}",
        f"  2026-01-12 08:00:00 fired: job {jobs[2]}",
    ]
    fires = ScheduleFire.objects.order_by("slot")
    assert {(f.kind, f.launched_by) for f in fires} == {(FireKind.BACKFILL, user())}


def test_backfill_leaves_slots_already_handled_alone():
    paris_nine()
    run(
        "backfill",
        "paris",
        "--from",
        "2026-01-11T00:00+01:00",
        "--to",
        "2026-01-11T10:00",
    )
    first = Job.objects.get()

    lines = run(
        "backfill", "paris", "--from", "2026-01-10T12:00Z", "--to", "2026-01-11T12:00Z"
    )

    assert lines == [
        "Backfill of schedule 'paris' from 2026-01-10 12:00:00 to 2026-01-11 "
        "12:00:00 UTC: 0 slot(s) fired, 1 already handled.",
        "  2026-01-11 08:00:00 already handled",
    ]
    assert list(Job.objects.all()) == [first]


def test_backfill_reports_a_slot_the_target_refused():
    make("busy", cron="0 8 * * *", skip_if_running=True)

    lines = run("backfill", "busy", "--from", "2026-01-10", "--to", "2026-01-11T08:00")

    job = Job.objects.get()
    assert lines == [
        "Backfill of schedule 'busy' from 2026-01-10 00:00:00 to 2026-01-11 "
        "08:00:00 UTC: 2 slot(s) fired, 0 already handled.",
        f"  2026-01-10 08:00:00 fired: job {job.pk}",
        f"  2026-01-11 08:00:00 skipped: job {job.pk} of an earlier fire is still "
        "ready and the schedule skips while its previous job runs",
    ]


@pytest.mark.parametrize(
    ("option", "value"), [("--from", "yesterday"), ("--to", "2026-13-01")]
)
def test_backfill_refuses_a_time_that_is_not_iso(option, value):
    paris_nine()
    times = {"--from": "2026-01-10", "--to": "2026-01-11"}
    times[option] = value

    message = error_of("backfill", "paris", *(x for kv in times.items() for x in kv))

    assert message == (
        f"{option} {value!r} is not an ISO 8601 date and time. Write it like "
        "2026-03-01T08:00 (read in the schedule's time zone, Europe/Paris) or with "
        "an offset, like 2026-03-01T08:00+00:00."
    )
    assert not ScheduleFire.objects.exists()


def test_backfill_refuses_a_start_after_the_end():
    make(cron="0 8 * * *")
    message = error_of(
        "backfill", "hourly", "--from", "2026-01-12T00:00", "--to", "2026-01-10"
    )
    assert message == (
        "The backfill start 2026-01-12T00:00:00+00:00 is after its end "
        "2026-01-10T00:00:00+00:00. Swap them."
    )


def test_backfill_refuses_an_end_in_the_future():
    make()
    message = error_of(
        "backfill", "hourly", "--from", "2026-01-10", "--to", "2099-01-01T00:00Z"
    )
    assert message == (
        "The backfill end 2099-01-01T00:00:00+00:00 is in the future. Backfill only "
        "past slots: use an end at or before now; later slots fire on schedule."
    )


def test_backfill_refuses_too_many_slots():
    make("minutely", cron="* * * * *")
    message = error_of(
        "backfill", "minutely", "--from", "2026-01-01", "--to", "2026-01-10"
    )
    assert message == (
        "The interval 2026-01-01T00:00:00+00:00 to 2026-01-10T00:00:00+00:00 holds "
        "more than 10000 slots of '* * * * *'. Backfill a shorter interval."
    )
    assert not ScheduleFire.objects.exists()


def test_backfill_of_an_unknown_schedule():
    assert error_of(
        "backfill", "nope", "--from", "2026-01-01", "--to", "2026-01-02"
    ) == (NOT_FOUND)


# worker --with-scheduler --------------------------------------------------------------


def test_worker_refuses_with_scheduler_and_burst():
    assert error_of("worker", "--burst", "--with-scheduler") == (
        "--with-scheduler cannot go with --burst: a scheduler runs until stopped, a "
        "burst worker stops when no job is ready. Run `geartrain scheduler --once` "
        "before the burst worker instead."
    )
