"""Schedule rules (SPEC rows 4, 5, 59-62, 68): validation messages, the default time
zone, several schedules per task, cron_base, the pipeline's cron kept as a schedule,
disabled pipelines, and bookkeeping that configuration saves never overwrite.

Every message is asserted word for word through ``full_clean()``, as the admin shows it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.test import override_settings
from django.utils import timezone

from geartrain.models import (
    FireKind,
    FireStatus,
    Pipeline,
    PipelineRun,
    Schedule,
    ScheduleFire,
)
from geartrain.models.schedule_rules import default_time_zone
from geartrain.scheduler import api, ticker
from tests.acceptance.pipelines import make_pipeline

pytestmark = pytest.mark.django_db(transaction=True)

T = "tests.testapp.tasks."
BASE = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def valid(**fields) -> Schedule:
    """An unsaved schedule that passes full_clean(), changed by ``fields``."""
    options = {
        "name": "report",
        "cron": "*/5 * * * *",
        "timezone": "UTC",
        "task_path": T + "record",
        "kwargs": {"key": "k"},
        "cron_base": BASE,
    }
    options.update(fields)
    return Schedule(**options)


def errors_of(schedule: Schedule) -> dict[str, list[str]]:
    """The messages of full_clean(), per field ({} when valid)."""
    try:
        schedule.full_clean()
    except ValidationError as error:
        return error.message_dict
    return {}


def pipeline(name: str = "etl", **fields) -> Pipeline:
    return make_pipeline(name, {"s": {"steps": {"a": {}}}}, **fields)


# --- validation (row 60) -----------------------------------------------------------


def test_a_valid_schedule_has_no_errors():
    assert errors_of(valid()) == {}
    assert errors_of(valid(task_path="", kwargs={"day": 1}, pipeline=pipeline())) == {}


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        (
            {"cron": "61 * * * *"},
            "cron",
            "Cron field 'minute' has value '61', which is outside 0-59. "
            "Use a number from 0 to 59.",
        ),
        (
            {"cron": "* * * *"},
            "cron",
            "Cron expression '* * * *' has 4 fields; a cron expression has 5 fields "
            "(minute hour day-of-month month day-of-week) or is one of @yearly, "
            "@annually, @monthly, @weekly, @daily, @midnight, @hourly.",
        ),
        (
            {"timezone": "Mars/Olympus"},
            "timezone",
            "Time zone 'Mars/Olympus' is not a known IANA time zone. "
            "Use a name such as 'Europe/Paris' or 'UTC'.",
        ),
        (
            {"task_path": ""},
            "task_path",
            "A schedule needs exactly one target: a pipeline or a task. "
            "Choose a pipeline, or enter a task, not both.",
        ),
        (
            {"args": {"key": "k"}, "kwargs": {}},
            "args",
            "Positional arguments must be a JSON list, not {'key': 'k'}. "
            'Write them as [1, "two"], or [] for none.',
        ),
        (
            {"kwargs": ["k"]},
            "kwargs",
            "Keyword arguments must be a JSON object, not ['k']. "
            'Write them as {"name": "value"}, or {} for none.',
        ),
        (
            {"task_path": T + "nope"},
            "task_path",
            "Task 'tests.testapp.tasks.nope' is not registered, so no worker would "
            "run it. Pick one of the registered tasks.",
        ),
        (
            {"task_path": T + "add", "args": [1], "kwargs": {}},
            "kwargs",
            "The arguments do not fit task 'tests.testapp.tasks.add'(a: 'int', "
            "b: 'int') -> 'int': missing a required argument: 'b'. Change the "
            "arguments to match the task's parameters.",
        ),
        (
            {"kwargs": {"key": "k", "colour": "red"}},
            "kwargs",
            "The arguments do not fit task 'tests.testapp.tasks.record'(key: 'str') "
            "-> 'str': got an unexpected keyword argument 'colour'. Change the "
            "arguments to match the task's parameters.",
        ),
        (
            {"queue": "gpu"},
            "queue",
            "Queue 'gpu' is not served by any geartrain task backend. "
            "Use one of the configured queues: default, emails, reports.",
        ),
        (
            {"priority": 101},
            "priority",
            "Priority 101 is outside -100..100. Use a number from -100 (last) to "
            "100 (first).",
        ),
        (
            {"priority": -101},
            "priority",
            "Priority -101 is outside -100..100. Use a number from -100 (last) to "
            "100 (first).",
        ),
        (
            {"misfire": "skip"},
            "grace_seconds",
            "The misfire policy 'skip' needs a grace period: how many seconds late a "
            "slot may still run. Enter one, or use catch_up.",
        ),
        (
            {"misfire": "coalesce"},
            "grace_seconds",
            "The misfire policy 'coalesce' needs a grace period: how many seconds "
            "late a slot may still run. Enter one, or use catch_up.",
        ),
        (
            {"misfire": "skip+coalesce", "grace_seconds": 60},
            "misfire",
            "Value 'skip+coalesce' is not a valid choice.",
        ),
        (
            {"catch_up_limit": 0},
            "catch_up_limit",
            "A catch-up limit of 0 would drop every missed slot. Enter 1 or more, "
            "leave it blank for the default, or use the skip policy.",
        ),
        (
            {"end_at": BASE - timedelta(hours=1)},
            "end_at",
            "The end 2026-03-02T07:00:00+00:00 is not after the start "
            "2026-03-02T08:00:00+00:00. Choose a later end, or leave it blank.",
        ),
        (
            {"end_at": BASE},
            "end_at",
            "The end 2026-03-02T08:00:00+00:00 is not after the start "
            "2026-03-02T08:00:00+00:00. Choose a later end, or leave it blank.",
        ),
    ],
)
def test_each_bad_value_gets_its_message(fields, field, message):
    assert errors_of(valid(**fields))[field] == [message]


def test_both_targets_are_refused():
    schedule = valid(pipeline=pipeline())
    assert errors_of(schedule) == {
        "task_path": [
            "A schedule needs exactly one target: a pipeline or a task. "
            "Choose a pipeline, or enter a task, not both."
        ]
    }


def test_a_pipeline_target_takes_no_positional_arguments_and_no_skip_if_running():
    schedule = valid(
        task_path="", pipeline=pipeline(), args=[1], kwargs={}, skip_if_running=True
    )
    assert errors_of(schedule) == {
        "args": [
            "A pipeline takes runtime arguments by name only, so positional "
            "arguments [1] cannot be passed. Move them to the keyword arguments."
        ],
        "skip_if_running": [
            "'Skip while running' applies to task targets only; a pipeline follows "
            "its own overlap rule. Untick it, or change the pipeline's overlap rule."
        ],
    }


def test_the_name_is_unique():
    valid().save()
    assert errors_of(valid(kwargs={"key": "other"}))["name"] == [
        "Schedule with this Name already exists."
    ]


def test_several_problems_are_reported_together():
    errors = errors_of(valid(timezone="Nowhere", misfire="skip", queue="gpu"))
    assert sorted(errors) == ["grace_seconds", "queue", "timezone"]


# --- several schedules per task (row 61) --------------------------------------------


def test_two_schedules_of_the_same_task_with_different_arguments_fire_separately():
    first = valid(name="for-a", kwargs={"key": "a"})
    second = valid(name="for-b", kwargs={"key": "b"})
    for schedule in (first, second):
        assert errors_of(schedule) == {}
        schedule.save()
    ticker.tick(BASE + timedelta(minutes=5))
    fires = ScheduleFire.objects.select_related("schedule", "job")
    fired = {fire.schedule.name: fire.job.kwargs for fire in fires}
    assert fired == {"for-a": {"key": "a"}, "for-b": {"key": "b"}}


# --- the default time zone (row 59) --------------------------------------------------


@override_settings(TIME_ZONE="Europe/Paris")
def test_the_default_time_zone_is_djangos_time_zone():
    assert default_time_zone() == "Europe/Paris"
    assert Schedule().timezone == "Europe/Paris"
    assert Pipeline().cron_timezone == "Europe/Paris"


@override_settings(TIME_ZONE="Mars/Olympus")
def test_the_default_time_zone_is_utc_when_djangos_is_not_a_zone():
    assert Schedule().timezone == "UTC"


def test_the_default_time_zone_is_utc_when_the_setting_is_absent():
    with override_settings():
        del settings.TIME_ZONE
        assert not hasattr(settings, "TIME_ZONE")
        assert Schedule().timezone == "UTC"
        assert Pipeline().cron_timezone == "UTC"


# --- cron_base (row 62) ---------------------------------------------------------------


def test_a_cron_base_on_a_slot_starts_at_the_following_slot():
    schedule = valid(cron_base=BASE)
    schedule.save()
    assert schedule.next_slot == BASE + timedelta(minutes=5)


def test_cron_base_is_read_in_the_schedules_zone():
    schedule = valid(cron="0 9 * * *", timezone="Asia/Tokyo", cron_base=BASE)
    schedule.save()  # 08:00 UTC is 17:00 in Tokyo: the first 09:00 is tomorrow's
    assert schedule.next_slot == datetime(2026, 3, 3, 0, 0, tzinfo=UTC)


def test_moving_cron_base_plans_from_the_new_start():
    schedule = valid(cron_base=BASE)
    schedule.save()
    schedule.cron_base = BASE - timedelta(hours=1)
    schedule.save()
    assert schedule.next_slot == BASE - timedelta(minutes=55)
    report = ticker.tick(BASE + timedelta(seconds=1))
    assert report.fired == 12  # 07:05 ... 08:00, caught up


# --- the pipeline's cron field (SPEC row 4) -------------------------------------------


def cron_schedules(p: Pipeline) -> list[Schedule]:
    return list(Schedule.objects.filter(pipeline=p, from_pipeline=True))


def test_a_pipeline_cron_is_kept_as_one_schedule_that_follows_the_pipeline():
    p = pipeline(cron="0 2 * * *", cron_timezone="Europe/Paris")
    (schedule,) = cron_schedules(p)
    assert (schedule.name, schedule.cron, schedule.timezone, schedule.enabled) == (
        "etl (pipeline cron)",
        "0 2 * * *",
        "Europe/Paris",
        True,
    )
    assert schedule.due_at is not None

    p.cron, p.enabled = "30 4 * * 1", False
    p.save()
    (updated,) = cron_schedules(p)
    assert updated.pk == schedule.pk
    assert (updated.cron, updated.enabled, updated.due_at) == (
        "30 4 * * 1",
        False,
        None,
    )

    p.enabled = True
    p.save()
    (enabled,) = cron_schedules(p)
    assert enabled.enabled
    assert enabled.next_slot is not None
    assert enabled.next_slot.astimezone(enabled.zone()).strftime("%a %H:%M") == (
        "Mon 04:30"
    )

    p.cron = ""
    p.save()
    assert cron_schedules(p) == []


def test_a_pipeline_without_cron_has_no_schedule_and_a_users_schedule_stays():
    p = pipeline()
    assert cron_schedules(p) == []
    mine = valid(name="mine", task_path="", kwargs={}, pipeline=p)
    mine.save()
    p.cron = "0 3 * * *"
    p.save()
    p.cron = ""
    p.save()
    assert list(p.schedules.all()) == [mine]


def test_deleting_a_pipeline_deletes_its_schedule():
    p = pipeline(cron="0 2 * * *")
    p.delete()
    assert not Schedule.objects.exists()


def test_a_bulk_delete_of_pipelines_deletes_their_schedules_too():
    pipeline("one", cron="0 2 * * *")
    pipeline("two", cron="0 3 * * *")
    assert Schedule.objects.count() == 2
    Pipeline.objects.all().delete()
    assert not Schedule.objects.exists()


# --- disabled pipelines (SPEC row 5) --------------------------------------------------


def test_a_disabled_pipelines_cron_fires_nothing():
    p = pipeline(cron="* * * * *", enabled=False)
    assert Schedule.objects.get(pipeline=p).due_at is None
    assert ticker.tick(timezone.now() + timedelta(hours=1)).fired == 0
    assert not PipelineRun.objects.exists()


def test_a_schedule_of_a_disabled_pipeline_skips_with_its_reason_but_run_now_runs():
    p = pipeline(enabled=False)
    schedule = valid(task_path="", kwargs={"day": "today"}, pipeline=p)
    schedule.save()

    ticker.tick(BASE + timedelta(minutes=5))

    fire = schedule.fires.get()
    assert (fire.status, fire.reason) == (
        FireStatus.SKIPPED,
        "Pipeline 'etl' is disabled, so its schedule does not launch it. "
        "Enable it, or launch it by hand.",
    )
    assert not PipelineRun.objects.exists()

    manual = api.run_now(schedule, launched_by="ops")

    run = PipelineRun.objects.get()
    assert (manual.kind, manual.status, manual.slot) == (
        FireKind.MANUAL,
        FireStatus.FIRED,
        None,
    )
    assert manual.pipeline_run_id == run.pk
    assert (run.trigger, run.arguments) == ("manual", {"day": "today"})


# --- bookkeeping is the scheduler's (row 68) ------------------------------------------


def test_the_tickers_bookkeeping_writes_do_not_change_changed_at():
    schedule = valid()
    schedule.save()
    changed_at = Schedule.objects.get().changed_at
    ticker.tick(BASE + timedelta(minutes=12))
    row = Schedule.objects.get()
    assert (row.total_runs, row.last_slot) == (2, BASE + timedelta(minutes=10))
    assert row.changed_at == changed_at


def test_saving_a_stale_copy_keeps_the_bookkeeping_the_ticker_wrote():
    stale = valid()
    stale.save()
    ticker.tick(BASE + timedelta(minutes=12))  # fires 08:05 and 08:10
    written = Schedule.objects.values(
        "next_slot", "due_at", "last_slot", "last_fired_at", "total_runs"
    ).get()

    stale.description = "edited in the admin meanwhile"
    stale.save()

    row = Schedule.objects.get()
    assert row.description == "edited in the admin meanwhile"
    assert row.changed_at > written["last_fired_at"]
    assert {name: getattr(row, name) for name in written} == written


def test_a_timing_edit_of_a_stale_copy_keeps_the_counters():
    stale = valid()
    stale.save()
    ticker.tick(BASE + timedelta(minutes=12))

    stale.cron = "0 * * * *"
    stale.save()

    row = Schedule.objects.get()
    assert (row.total_runs, row.last_slot) == (2, BASE + timedelta(minutes=10))
    assert row.next_slot == row.due_at
    assert row.next_slot is not None
    assert row.next_slot.minute == 0
