"""The schedule admin: list, form and its rules, next slots, dependencies, actions,
Run now, fires; and the pipeline admin's cron field (SPEC row 4)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from html import unescape
from itertools import pairwise
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from geartrain.admin.schedule_pages import Mark, fires_svg
from geartrain.models import (
    FireKind,
    FireStatus,
    Job,
    Pipeline,
    PipelineRun,
    Schedule,
    ScheduleDependency,
    ScheduleFire,
)
from geartrain.pipelines import launching
from geartrain.registry import registry
from geartrain.scheduler import api, firing
from tests.acceptance.pipelines import make_pipeline

pytestmark = pytest.mark.django_db

SCHEDULES = "/admin/geartrain/schedule/"
FIRES = "/admin/geartrain/schedulefire/"
T = "tests.testapp.tasks."
BASE = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
ETL: dict[str, dict[str, Any]] = {"extract": {"steps": {"e1": {}}}}


def change_url(schedule: Schedule) -> str:
    return reverse("admin:geartrain_schedule_change", args=[schedule.pk])


def run_url(schedule: Schedule | int) -> str:
    pk = schedule if isinstance(schedule, int) else schedule.pk
    return reverse("admin:geartrain_schedule_run", args=[pk])


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def form_errors(response) -> dict[str, list[str]]:
    return {k: list(v) for k, v in response.context["adminform"].form.errors.items()}


def task_schedule(name: str = "reports", **fields: Any) -> Schedule:
    options: dict[str, Any] = {
        "name": name,
        "cron": "*/5 * * * *",
        "timezone": "UTC",
        "task_path": T + "record",
        "kwargs": {"key": name},
    }
    options.update(fields)
    return Schedule.objects.create(**options)


def pipeline_schedule(name: str, pipeline: Pipeline, **fields: Any) -> Schedule:
    options: dict[str, Any] = {"cron": "0 2 * * *", "timezone": "UTC"}
    options.update(fields)
    return Schedule.objects.create(name=name, pipeline=pipeline, **options)


@pytest.fixture
def staff_client() -> Any:
    """A logged-in staff user with exactly the given ``geartrain`` permissions."""
    made = 0

    def make(*codenames: str) -> Client:
        nonlocal made
        made += 1
        user = User.objects.create_user(f"staff-{made}", is_staff=True)
        perms = Permission.objects.filter(
            content_type__app_label="geartrain", codename__in=codenames
        )
        assert perms.count() == len(codenames), codenames
        user.user_permissions.set(perms)
        client = Client()
        client.force_login(user)
        return client

    return make


EDITOR = (
    "view_schedule",
    "add_schedule",
    "change_schedule",
    "view_scheduledependency",
    "add_scheduledependency",
    "change_scheduledependency",
    "delete_scheduledependency",
)


# Building change-form POSTs -----------------------------------------------------------


def _formset(prefix: str, rows: list[dict[str, Any]], initial: int) -> dict[str, Any]:
    data: dict[str, Any] = {
        f"{prefix}-TOTAL_FORMS": len(rows),
        f"{prefix}-INITIAL_FORMS": initial,
        f"{prefix}-MIN_NUM_FORMS": 0,
        f"{prefix}-MAX_NUM_FORMS": 1000,
    }
    for index, row in enumerate(rows):
        for key, value in row.items():
            if value is True:
                data[f"{prefix}-{index}-{key}"] = "on"
            elif value not in (False, None):
                data[f"{prefix}-{index}-{key}"] = value
    return data


def edge_row(dep: ScheduleDependency | None = None, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"on_failure": "wait", "future": False}
    if dep is not None:
        row.update(
            id=dep.pk,
            depender=dep.depender_id,
            dependee=dep.dependee_id,
            future=dep.future,
            on_failure=dep.on_failure,
        )
    row.update(fields)
    return row


def form_data(
    schedule: Schedule | None = None,
    on: list[dict[str, Any]] | None = None,
    by: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """The change form as a browser posts it: the stored state, then ``fields``."""
    values: dict[str, Any] = {
        "name": "",
        "description": "",
        "enabled": True,
        "cron": "",
        "timezone": "UTC",
        "pipeline": "",
        "task_path": "",
        "args": "[]",
        "kwargs": "{}",
        "queue": "default",
        "priority": 0,
        "misfire": "catch_up",
        "grace_seconds": "",
        "catch_up_limit": "",
        "skip_if_running": False,
    }
    if schedule is not None:
        values.update(
            {
                name: getattr(schedule, name)
                for name in values
                if name not in ("pipeline", "args", "kwargs")
            }
        )
        values.update(
            pipeline=schedule.pipeline_id or "",
            args=json.dumps(schedule.args),
            kwargs=json.dumps(schedule.kwargs),
            grace_seconds=schedule.grace_seconds or "",
            catch_up_limit=schedule.catch_up_limit or "",
        )
        for name in ("cron_base", "end_at"):
            value = getattr(schedule, name)
            if value is not None:
                values[f"{name}_0"] = value.strftime("%Y-%m-%d")
                values[f"{name}_1"] = value.strftime("%H:%M:%S")
    values.update(fields)
    data = {k: ("on" if v is True else v) for k, v in values.items() if v is not False}
    data["initial-args"] = data["args"]
    data["initial-kwargs"] = data["kwargs"]
    stored_on = stored_by = []
    if schedule is not None:
        stored_on = list(schedule.dependencies.order_by("pk"))
        stored_by = list(schedule.dependents.order_by("pk"))
    on_rows = [edge_row(d) for d in stored_on] if on is None else on
    by_rows = [edge_row(d) for d in stored_by] if by is None else by
    data.update(_formset("dependencies", on_rows, len(stored_on)))
    data.update(_formset("dependents", by_rows, len(stored_by)))
    return data


# The list -----------------------------------------------------------------------------


def test_schedule_list_shows_timing_target_and_bookkeeping(admin_client):
    etl = make_pipeline("etl", ETL)
    reports = task_schedule(cron="0 9 * * *", timezone="Europe/Paris")
    pipeline_schedule("nightly-etl", etl, held_reason="")
    Schedule.objects.filter(pk=reports.pk).update(
        held_reason="waiting for schedule 'nightly-etl'", total_runs=4
    )
    api.run_now(reports)
    response = admin_client.get(SCHEDULES)
    assert response.status_code == 200
    html = response.content.decode()
    for title in (
        "Name",
        "Cron expression",
        "Time zone",
        "Target",
        "Enabled",
        "Next slot",
        "Last slot",
        "Last fired at",
        "Runs",
        "Running",
        "Held because",
    ):
        assert f">{title}<" in html, title
    assert '<td class="field-cron_code"><code>0 9 * * *</code></td>' in html
    pipeline_url = reverse("admin:geartrain_pipeline_change", args=[etl.pk])
    assert f'pipeline <a href="{pipeline_url}">etl</a>' in html
    assert f"task <code>{T}record</code>" in html
    rows = {row.name: row for row in response.context["cl"].result_list}
    assert rows["reports"].running_count == 1
    assert rows["nightly-etl"].running_count == 0
    assert re.search(r'<td class="field-running">1</td>', html)
    assert "waiting for schedule &#x27;nightly-etl&#x27;" in html
    # The next slot is shown in the schedule's own zone.
    slot = reports.next_slot.astimezone(reports.zone())
    assert slot.strftime("%a %Y-%m-%d 09:00 %Z") in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"q": "report"}, {"reports"}),
        ({"q": "record"}, {"reports", "mails"}),
        ({"q": "etl"}, {"nightly-etl"}),
        ({"enabled__exact": "0"}, {"mails"}),
        ({"misfire__exact": "skip"}, {"mails"}),
        ({"target": "pipeline"}, {"nightly-etl"}),
        ({"target": "task"}, {"reports", "mails"}),
        ({}, {"reports", "mails", "nightly-etl"}),
    ],
)
def test_schedule_search_and_filters(admin_client, query, expected):
    etl = make_pipeline("etl", ETL)
    task_schedule()
    task_schedule("mails", enabled=False, misfire="skip", grace_seconds=60)
    pipeline_schedule("nightly-etl", etl)
    response = admin_client.get(SCHEDULES, query)
    assert response.status_code == 200
    assert {s.name for s in response.context["cl"].result_list} == expected


# The form: choices, rules, next slots -------------------------------------------------


def test_task_picker_lists_registered_tasks_and_zones_are_suggested(admin_client):
    """SPEC row 84: the task select lists the registered tasks."""
    html = admin_client.get(f"{SCHEDULES}add/").content.decode()
    select = re.search(r'<select name="task_path".*?</select>', html, re.S)
    assert select is not None
    offered = re.findall(r'<option value="([^"]*)"', select.group(0))
    assert offered == ["", *registry.paths()]
    assert T + "record" in offered
    assert 'list="geartrain-time-zones"' in html
    assert '<option value="Europe/Paris">' in html
    assert '<option value="America/New_York">' in html
    queues = re.search(r'<select name="queue".*?</select>', html, re.S)
    assert queues is not None
    assert re.findall(r'<option value="(\w+)"', queues.group(0)) == [
        "default",
        "emails",
        "reports",
    ]
    assert "Enter a cron expression to see its next slots." in html


def test_an_unregistered_stored_task_stays_selectable_and_marked(admin_client):
    schedule = task_schedule()
    Schedule.objects.filter(pk=schedule.pk).update(task_path="gone.task")
    html = admin_client.get(change_url(schedule)).content.decode()
    assert '<option value="gone.task" selected>gone.task (not registered)</option>' in (
        html
    )


def test_add_a_task_schedule(admin_client):
    data = form_data(
        name="hourly-report",
        cron="15 * * * *",
        timezone="Europe/Paris",
        task_path=T + "send_email",
        kwargs='{"to": "ops@example.com"}',
        queue="emails",
        priority=5,
        misfire="coalesce",
        grace_seconds=300,
        skip_if_running=True,
    )
    response = admin_client.post(f"{SCHEDULES}add/", data)
    assert response.status_code == 302, form_errors(response)
    made = Schedule.objects.get(name="hourly-report")
    assert (made.task_path, made.kwargs, made.queue, made.priority) == (
        T + "send_email",
        {"to": "ops@example.com"},
        "emails",
        5,
    )
    assert (made.misfire, made.grace_seconds, made.skip_if_running) == (
        "coalesce",
        300,
        True,
    )
    assert made.next_slot is not None
    assert made.next_slot > timezone.now()
    assert made.next_slot.minute == 15
    assert made.due_at == made.next_slot


def test_add_a_pipeline_schedule_with_runtime_arguments(admin_client):
    etl = make_pipeline("etl", ETL)
    data = form_data(
        name="nightly", cron="@daily", pipeline=etl.pk, kwargs='{"day": "today"}'
    )
    response = admin_client.post(f"{SCHEDULES}add/", data)
    assert response.status_code == 302, form_errors(response)
    made = Schedule.objects.get(name="nightly")
    assert (made.pipeline, made.kwargs, made.from_pipeline) == (
        etl,
        {"day": "today"},
        False,
    )


def test_a_takes_context_task_can_be_scheduled(admin_client):
    data = form_data(name="ctx", cron="@hourly", task_path=T + "attempt_number")
    response = admin_client.post(f"{SCHEDULES}add/", data)
    assert response.status_code == 302, form_errors(response)


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        (
            {"cron": "61 * * * *"},
            "cron",
            "Cron field 'minute' has value '61', which is outside 0-59. Use a number "
            "from 0 to 59.",
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
            "Time zone 'Mars/Olympus' is not a known IANA time zone. Use a name such "
            "as 'Europe/Paris' or 'UTC'.",
        ),
        (
            {"task_path": ""},
            "task_path",
            "A schedule needs exactly one target: a pipeline or a task. Choose a "
            "pipeline, or enter a task, not both.",
        ),
        (
            {"args": '{"a": 1}'},
            "args",
            "Positional arguments must be a JSON list, not {'a': 1}. Write them as "
            '[1, "two"], or [] for none.',
        ),
        (
            {"kwargs": '{"colour": "red"}'},
            "kwargs",
            "The arguments do not fit task 'tests.testapp.tasks.record'(key: 'str') "
            "-> 'str': missing a required argument: 'key'. Change the arguments to "
            "match the task's parameters.",
        ),
        (
            {"misfire": "skip"},
            "grace_seconds",
            "The misfire policy 'skip' needs a grace period: how many seconds late a "
            "slot may still run. Enter one, or use catch_up.",
        ),
        (
            {"catch_up_limit": 0},
            "catch_up_limit",
            "A catch-up limit of 0 would drop every missed slot. Enter 1 or more, "
            "leave it blank for the default, or use the skip policy.",
        ),
        (
            {"priority": 101},
            "priority",
            "Priority 101 is outside -100..100. Use a number from -100 (last) to 100 "
            "(first).",
        ),
    ],
)
def test_add_refuses_each_bad_value_with_the_rules_message(
    admin_client, fields, field, message
):
    values = {
        "name": "bad",
        "cron": "@hourly",
        "task_path": T + "record",
        "kwargs": '{"key": "k"}',
        **fields,
    }
    response = admin_client.post(f"{SCHEDULES}add/", form_data(**values))
    assert response.status_code == 200
    assert form_errors(response) == {field: [message]}
    assert not Schedule.objects.exists()


def test_a_pipeline_target_refuses_positional_arguments_and_a_priority_out_of_range(
    admin_client,
):
    etl = make_pipeline("etl", ETL)
    data = form_data(
        name="bad", cron="@daily", pipeline=etl.pk, args="[1]", priority=-300
    )
    response = admin_client.post(f"{SCHEDULES}add/", data)
    assert form_errors(response) == {
        "args": [
            "A pipeline takes runtime arguments by name only, so positional "
            "arguments [1] cannot be passed. Move them to the keyword arguments."
        ],
        "priority": [
            "Priority -300 is outside -100..100. Use a number from -100 (last) to "
            "100 (first)."
        ],
    }


def test_change_recomputes_the_next_slot_and_keeps_the_bookkeeping(admin_client):
    schedule = task_schedule(cron="0 9 * * *")
    Schedule.objects.filter(pk=schedule.pk).update(total_runs=7)
    schedule.refresh_from_db()
    data = form_data(schedule, cron="30 18 * * *", description="evening")
    response = admin_client.post(change_url(schedule), data)
    assert response.status_code == 302, form_errors(response)
    schedule.refresh_from_db()
    assert (schedule.cron, schedule.description, schedule.total_runs) == (
        "30 18 * * *",
        "evening",
        7,
    )
    assert schedule.next_slot is not None
    assert (schedule.next_slot.hour, schedule.next_slot.minute) == (18, 30)


def test_change_page_shows_the_next_five_slots_in_the_zone_and_in_utc(admin_client):
    schedule = task_schedule(cron="0 9 * * *", timezone="America/New_York")
    html = admin_client.get(change_url(schedule)).content.decode()
    table = re.search(r'<table class="geartrain-next-slots">.*?</table>', html, re.S)
    assert table is not None
    assert "<th>in America/New_York</th><th>in UTC</th>" in table.group(0)
    rows = re.findall(
        r'<tr class="geartrain-slot"><td>(.*?)</td><td>(.*?)</td></tr>', table.group(0)
    )
    assert len(rows) == 5
    for local, utc in rows:
        # 09:00 in New York is 13:00 UTC in summer (EDT), 14:00 in winter (EST).
        assert re.fullmatch(r"\w{3} \d{4}-\d\d-\d\d 09:00 E[DS]T", local), local
        hour = "13:00" if local.endswith("EDT") else "14:00"
        assert re.fullmatch(rf"\d{{4}}-\d\d-\d\d {hour} UTC", utc), utc
    days = [datetime.strptime(local[4:14], "%Y-%m-%d") for local, _ in rows]
    assert [b - a for a, b in pairwise(days)] == [timedelta(days=1)] * 4


def test_the_preview_follows_what_is_typed(staff_client):
    url = reverse("admin:geartrain_schedule_preview")
    editor = staff_client(*EDITOR)
    html = editor.get(url, {"cron": "*/15 * * * *", "timezone": "UTC"}).content
    assert html.decode().count('class="geartrain-slot"') == 5
    bad = editor.get(url, {"cron": "61 * * * *", "timezone": "Mars/Olympus"})
    assert re.findall(r"<li>(.*?)</li>", unescape(bad.content.decode())) == [
        "Cron field 'minute' has value '61', which is outside 0-59. Use a number "
        "from 0 to 59.",
        "Time zone 'Mars/Olympus' is not a known IANA time zone. Use a name such as "
        "'Europe/Paris' or 'UTC'.",
    ]
    ending = editor.get(
        url,
        {
            "cron": "@daily",
            "timezone": "UTC",
            "end_at_0": (timezone.now() + timedelta(days=2)).strftime("%Y-%m-%d"),
            "end_at_1": "12:00:00",
        },
    ).content.decode()
    assert ending.count('class="geartrain-slot"') == 2
    assert "The schedule ends at " in ending
    assert staff_client("view_job").get(url).status_code == 403


def test_a_failed_save_shows_the_preview_of_what_was_typed(admin_client):
    data = form_data(name="x", cron="@weekly", timezone="Asia/Tokyo", misfire="skip")
    html = admin_client.post(f"{SCHEDULES}add/", data).content.decode()
    assert "<th>in Asia/Tokyo</th>" in html
    assert html.count('class="geartrain-slot"') == 5
    assert "Sun " in html


# Dependencies -------------------------------------------------------------------------


def test_dependencies_are_saved_from_both_inlines(admin_client):
    nightly, reports, mails = (
        task_schedule(n) for n in ("nightly", "reports", "mails")
    )
    html = admin_client.get(change_url(reports)).content.decode()
    headings = re.findall(
        r'<h2 id="(\w+)-heading" class="inline-heading">\s*(.*?)\s*</h2>', html
    )
    assert headings == [
        ("dependencies", "Dependent on"),
        ("dependents", "Dependent by"),
    ]
    data = form_data(
        reports,
        on=[edge_row(dependee=nightly.pk, on_failure="skip")],
        by=[edge_row(depender=mails.pk, future=True)],
    )
    response = admin_client.post(change_url(reports), data)
    assert response.status_code == 302, form_errors(response)
    edges = {
        (d.depender.name, d.dependee.name, d.future, d.on_failure)
        for d in ScheduleDependency.objects.all()
    }
    assert edges == {
        ("reports", "nightly", False, "skip"),
        ("mails", "reports", True, "wait"),
    }
    # "Dependent by" does not offer the schedule itself.
    html = admin_client.get(change_url(reports)).content.decode()
    select = re.search(r'<select name="dependents-0-depender".*?</select>', html, re.S)
    assert select is not None
    assert f'value="{reports.pk}"' not in select.group(0)


def test_a_self_dependency_must_be_future_only(admin_client):
    reports = task_schedule()
    data = form_data(reports, on=[edge_row(dependee=reports.pk)])
    response = admin_client.post(change_url(reports), data)
    assert response.status_code == 200
    formset = response.context["inline_admin_formsets"][0].formset
    assert formset.errors == [
        {
            "future": [
                "Schedule 'reports' cannot depend on itself unless the dependency is "
                "'future only' (wait for its own previous run). Tick 'future only', "
                "or choose another schedule."
            ]
        }
    ]
    assert not ScheduleDependency.objects.exists()
    data = form_data(reports, on=[edge_row(dependee=reports.pk, future=True)])
    assert admin_client.post(change_url(reports), data).status_code == 302
    assert ScheduleDependency.objects.get().future


def test_a_cycle_with_a_stored_dependency_is_shown_on_the_row(admin_client):
    a, b = task_schedule("a"), task_schedule("b")
    ScheduleDependency.objects.create(depender=b, dependee=a)
    data = form_data(a, on=[edge_row(dependee=b.pk)])
    response = admin_client.post(change_url(a), data)
    assert response.status_code == 200
    formset = response.context["inline_admin_formsets"][0].formset
    assert formset.errors == [
        {
            "dependee": [
                "This dependency creates a cycle: 'a' -> 'b' -> 'a'. A schedule "
                "cannot wait, even indirectly, for itself. Remove one of the "
                "dependencies, or make this one 'future only'."
            ]
        }
    ]
    assert ScheduleDependency.objects.count() == 1


def test_a_cycle_made_by_one_save_is_rolled_back(admin_client):
    a, b = task_schedule("a"), task_schedule("b")
    data = form_data(
        a,
        description="edited",
        on=[edge_row(dependee=b.pk)],
        by=[edge_row(depender=b.pk)],
    )
    response = admin_client.post(change_url(a), data)
    assert response.status_code == 200
    assert list(response.context["adminform"].form.non_field_errors()) == [
        "This dependency creates a cycle: 'a' -> 'b' -> 'a'. A schedule cannot "
        "wait, even indirectly, for itself. Remove one of the dependencies, or make "
        "this one 'future only'.",
    ]
    assert not ScheduleDependency.objects.exists()
    assert Schedule.objects.get(pk=a.pk).description == ""


# Enable, disable, toggle --------------------------------------------------------------


def act(client: Client, action: str, *schedules: Schedule):
    data = {"action": action, "_selected_action": [s.pk for s in schedules]}
    return client.post(SCHEDULES, data, follow=True)


def test_disable_enable_and_toggle_say_how_many_changed(admin_client):
    a, b, c = (task_schedule(n) for n in ("a", "b", "c"))
    response = act(admin_client, "disable_selected", a, b)
    assert messages_of(response) == ["2 schedules were successfully disabled."]
    history = LogEntry.objects.get(object_id=str(a.pk))
    assert (history.user.username, history.get_change_message()) == (
        "admin",
        "Changed Enabled.",
    )
    a.refresh_from_db()
    assert (a.enabled, a.next_slot, a.due_at) == (False, None, None)

    response = act(admin_client, "enable_selected", a, c)
    assert messages_of(response) == [
        "1 schedule was successfully enabled; 1 was already enabled."
    ]
    a.refresh_from_db()
    assert a.enabled
    assert a.next_slot is not None
    assert a.next_slot > timezone.now()
    assert a.due_at == a.next_slot

    response = act(admin_client, "toggle_selected", a, b, c)
    assert messages_of(response) == [
        "3 schedules were successfully toggled (1 enabled, 2 disabled)."
    ]
    states = dict(Schedule.objects.values_list("name", "enabled"))
    assert states == {"a": False, "b": True, "c": False}


def test_nothing_changed_is_a_warning(admin_client):
    a = task_schedule("a", enabled=False)
    response = act(admin_client, "disable_selected", a)
    assert messages_of(response) == [
        "0 schedules were successfully disabled; 1 was already disabled."
    ]
    assert next(iter(response.context["messages"])).level_tag == "warning"


def test_enabling_actions_need_the_change_permission(staff_client):
    a = task_schedule("a")
    viewer = staff_client("view_schedule")
    html = viewer.get(SCHEDULES).content.decode()
    assert 'value="disable_selected"' not in html
    response = act(viewer, "disable_selected", a)
    assert response.status_code == 200
    assert Schedule.objects.get(pk=a.pk).enabled
    editor = staff_client("view_schedule", "change_schedule")
    response = act(editor, "disable_selected", a)
    assert messages_of(response) == ["1 schedule was successfully disabled."]


def test_a_pipeline_cron_schedule_is_left_alone_by_the_enabling_actions(admin_client):
    etl = make_pipeline("etl", ETL, cron="@daily")
    made = Schedule.objects.get(from_pipeline=True)
    other = task_schedule()
    response = act(admin_client, "disable_selected", made, other)
    assert messages_of(response) == [
        "1 schedule was successfully disabled; 1 was left alone: it is made from a "
        "pipeline's cron field and follows the pipeline's Enabled box; change it on "
        "the pipeline's page."
    ]
    assert Schedule.objects.get(pk=made.pk).enabled
    assert etl.enabled


# Run now ------------------------------------------------------------------------------


def test_run_selected_now_needs_the_run_permission(staff_client):
    reports = task_schedule()
    editor = staff_client("view_schedule", "change_schedule")
    assert 'value="run_selected"' not in editor.get(SCHEDULES).content.decode()
    act(editor, "run_selected", reports)
    assert not Job.objects.exists()

    runner = staff_client("view_schedule", "run_schedule")
    assert 'value="run_selected"' in runner.get(SCHEDULES).content.decode()
    etl = make_pipeline("etl", ETL)
    nightly = pipeline_schedule("nightly", etl)
    response = act(runner, "run_selected", reports, nightly)
    job = Job.objects.get(task_path=T + "record")
    run = PipelineRun.objects.get()
    assert messages_of(response) == [
        f"Schedule 'nightly' ran now as pipeline run #{run.pk}.",
        f"Schedule 'reports' ran now as job #{job.pk}.",
    ]
    assert (job.task_path, job.kwargs) == (T + "record", {"key": "reports"})
    fires = ScheduleFire.objects.filter(kind=FireKind.MANUAL)
    assert set(fires.values_list("launched_by", flat=True)) == {"staff-2"}
    assert set(fires.values_list("slot", flat=True)) == {None}


def test_run_now_button_posts_with_its_permission(staff_client):
    reports = task_schedule()
    url = run_url(reports)
    viewer = staff_client("view_schedule")
    assert "geartrain-run-now" not in viewer.get(change_url(reports)).content.decode()
    runner = staff_client("view_schedule", "run_schedule")
    html = runner.get(change_url(reports)).content.decode()
    form = re.search(
        r'<form method="post" action="([^"]+)"[^>]*>(.*?)</form>', html, re.S
    )
    assert form is not None
    assert form.group(1) == url
    assert 'name="csrfmiddlewaretoken"' in form.group(2)
    assert 'id="geartrain-run-now"' in form.group(2)

    assert runner.get(url).status_code == 405
    assert viewer.post(url).status_code == 403
    assert staff_client("run_schedule").post(url).status_code == 403
    assert runner.post(run_url(987654)).status_code == 404
    assert not Job.objects.exists()

    response = runner.post(url, follow=True)
    job = Job.objects.get()
    assert response.redirect_chain[-1][0] == change_url(reports)
    assert messages_of(response) == [f"Schedule 'reports' ran now as job #{job.pk}."]
    # The fire is listed on the page, linked to its job.
    job_url = reverse("admin:geartrain_job_change", args=[job.pk])
    assert f'<a href="{job_url}">job #{job.pk}</a>' in response.content.decode()


def test_run_now_says_why_a_target_refused(admin_client):
    etl = make_pipeline("etl", ETL)
    nightly = pipeline_schedule("nightly", etl)
    first = launching.launch("etl")
    response = admin_client.post(run_url(nightly), follow=True)
    assert messages_of(response) == [
        f"Schedule 'nightly' did not run now: Pipeline 'etl' is already running "
        f"(run {first.pk}) and runs one at a time. Wait for run {first.pk} to "
        "finish, or cancel it."
    ]
    assert next(iter(response.context["messages"])).level_tag == "warning"
    fire = ScheduleFire.objects.get()
    assert (fire.status, fire.kind) == (FireStatus.SKIPPED, FireKind.MANUAL)
    assert PipelineRun.objects.count() == 1


def test_run_now_needs_login_and_csrf(admin_user):
    reports = task_schedule()
    anonymous = Client().post(run_url(reports))
    assert anonymous.status_code == 302
    assert "/admin/login/" in anonymous["Location"]
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin_user)
    assert strict.post(run_url(reports)).status_code == 403
    assert not Job.objects.exists()


# Fires --------------------------------------------------------------------------------


def make_fires(schedule: Schedule) -> tuple[ScheduleFire, ScheduleFire]:
    fired = firing.fire(schedule, BASE, kind=FireKind.CRON, now=BASE)
    skipped = firing.record_skip(
        schedule,
        BASE + timedelta(minutes=5),
        "the misfire policy skips slots more than 60 s late",
        now=BASE + timedelta(minutes=20),
    )
    assert fired is not None
    assert skipped is not None
    return fired, skipped


def test_change_page_lists_recent_fires_and_draws_them(admin_client):
    reports = task_schedule()
    fired, _skipped = make_fires(reports)
    html = admin_client.get(change_url(reports)).content.decode()
    rows = re.findall(r'<tr class="geartrain-fire-row" data-status="(\w+)">', html)
    assert rows == ["skipped", "fired"]  # newest first
    assert "Mon 2026-03-02 08:05 UTC" in html
    assert "the misfire policy skips slots more than 60 s late" in html
    job_url = reverse("admin:geartrain_job_change", args=[fired.job_id])
    assert f'<a href="{job_url}">job #{fired.job_id}</a>' in html
    svg = re.search(r'<svg [^>]*class="geartrain-fires".*?</svg>', html, re.S)
    assert svg is not None
    marks = re.findall(r'class="geartrain-fire" data-status="(\w+)"', svg.group(0))
    assert sorted(marks) == ["fired", "skipped"]
    assert f'<a href="{job_url}"><g class="geartrain-fire"' in svg.group(0)
    assert "1 fired · 1 skipped" in svg.group(0)
    fires_link = f"{FIRES}?schedule__id__exact={reports.pk}"
    assert f'href="{fires_link}"' in html


def test_pipeline_fires_link_to_their_runs(admin_client):
    etl = make_pipeline("etl", ETL)
    nightly = pipeline_schedule("nightly", etl)
    fire = api.run_now(nightly)
    html = admin_client.get(change_url(nightly)).content.decode()
    url = reverse("admin:geartrain_pipelinerun_change", args=[fire.pipeline_run_id])
    assert f'<a href="{url}">run #{fire.pipeline_run_id}</a>' in html
    assert ">run now<" in html


def test_the_fires_strip_escapes_and_places_marks_in_time():
    marks = [
        Mark(BASE, "succeeded", "cron", "<b>ok</b>", "/admin/x/"),
        Mark(BASE + timedelta(hours=1), "skipped", "cron", "late"),
        Mark(BASE + timedelta(hours=2), "fired", "manual", "now"),
    ]
    svg = fires_svg(marks, zone_name="Europe/Paris", label="Fires of <x>")
    assert "<b>" not in svg
    assert "&lt;b&gt;ok&lt;/b&gt;" in svg
    assert 'aria-label="Fires of &lt;x&gt;"' in svg
    xs = [float(x) for x in re.findall(r'<circle cx="([\d.]+)"', svg)]
    square = re.search(r'<rect x="([\d.]+)" y="[\d.]+" width="12"', svg)
    assert square is not None  # the manual fire is a square
    xs.append(float(square.group(1)) + 6)
    assert 16 < xs[0] < xs[1] < xs[2] < 820 - 16  # in time order, off the edges
    assert xs[1] - xs[0] == pytest.approx(xs[2] - xs[1], abs=0.2)  # one hour each
    assert xs[1] == pytest.approx(410, abs=0.2)  # the middle one in the middle
    assert 'stroke-dasharray="2 2"' in svg  # the skipped fire is hollow
    assert ">09:00<" in svg  # ticks in the schedule's zone (08:00 UTC = 09:00 CET)
    empty = fires_svg([], zone_name="UTC")
    assert "No fire yet." in empty


def test_fire_admin_filters_and_searches_skipped_slots(admin_client):
    reports, mails = task_schedule(), task_schedule("mails")
    make_fires(reports)
    api.run_now(mails)
    skipped = admin_client.get(FIRES, {"status__exact": "skipped"})
    assert [f.schedule.name for f in skipped.context["cl"].result_list] == ["reports"]
    html = skipped.content.decode()
    assert "the misfire policy skips slots more than 60 s late" in html
    found = admin_client.get(FIRES, {"q": "misfire policy"})
    assert len(found.context["cl"].result_list) == 1
    manual = admin_client.get(FIRES, {"kind__exact": "manual"})
    assert [f.schedule.name for f in manual.context["cl"].result_list] == ["mails"]
    mine = admin_client.get(FIRES, {"schedule__id__exact": reports.pk})
    assert len(mine.context["cl"].result_list) == 2


def test_fire_admin_is_read_only(admin_client, staff_client):
    reports = task_schedule()
    fired, _ = make_fires(reports)
    url = reverse("admin:geartrain_schedulefire_change", args=[fired.pk])
    assert admin_client.get(url).status_code == 200
    assert admin_client.get(f"{FIRES}add/").status_code == 403
    assert admin_client.post(url, {"reason": "x"}).status_code == 403
    viewer = staff_client("view_schedulefire", "delete_schedulefire")
    assert viewer.get(f"{url.removesuffix('change/')}delete/").status_code == 403
    assert ScheduleFire.objects.get(pk=fired.pk).reason == ""


# Schedules made from a pipeline's cron field ------------------------------------------


def test_a_pipeline_cron_schedule_is_read_only_with_a_note(admin_client):
    etl = make_pipeline("etl", ETL, cron="0 3 * * *", cron_timezone="Europe/Paris")
    made = Schedule.objects.get(from_pipeline=True)
    html = admin_client.get(change_url(made)).content.decode()
    pipeline_url = reverse("admin:geartrain_pipeline_change", args=[etl.pk])
    note = re.search(r'<p class="geartrain-from-pipeline".*?</p>', html, re.S)
    assert note is not None
    assert f'<a href="{pipeline_url}">etl</a>' in note.group(0)
    assert 'name="cron"' not in html
    assert 'name="enabled"' not in html
    assert 'name="dependencies-TOTAL_FORMS"' in html  # dependencies stay editable
    assert "deletelink" not in html
    data = form_data(made, cron="* * * * *", enabled=False)
    response = admin_client.post(change_url(made), data)
    assert response.status_code == 302, form_errors(response)
    made.refresh_from_db()
    assert (made.cron, made.timezone, made.enabled) == (
        "0 3 * * *",
        "Europe/Paris",
        True,
    )


def test_a_pipeline_cron_schedule_is_not_deleted_here(admin_client):
    make_pipeline("etl", ETL, cron="@daily")
    made = Schedule.objects.get(from_pipeline=True)
    url = reverse("admin:geartrain_schedule_delete", args=[made.pk])
    html = admin_client.get(url).content.decode()
    assert (
        "schedule &#x27;etl (pipeline cron)&#x27;, which is made from the cron "
        "field of pipeline &#x27;etl&#x27; (clear that field on the pipeline&#x27;s "
        "page to delete it)"
    ) in html
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    assert Schedule.objects.filter(pk=made.pk).exists()


def pipeline_form(pipeline: Pipeline, **fields: Any) -> dict[str, Any]:
    """The pipeline change form of a pipeline without stages."""
    data: dict[str, Any] = {
        "name": pipeline.name,
        "description": pipeline.description,
        "enabled": "on" if pipeline.enabled else "",
        "overlap": pipeline.overlap,
        "defaults": "{}",
        "initial-defaults": "{}",
        "cron": pipeline.cron,
        "cron_timezone": pipeline.cron_timezone,
    }
    for prefix in ("stages", "steps"):
        data.update(
            {
                f"{prefix}-TOTAL_FORMS": 0,
                f"{prefix}-INITIAL_FORMS": 0,
                f"{prefix}-MIN_NUM_FORMS": 0,
                f"{prefix}-MAX_NUM_FORMS": 1000,
            }
        )
    data.update(fields)
    return {k: v for k, v in data.items() if v != "" or k in ("cron", "description")}


def test_pipeline_admin_cron_field_keeps_one_schedule(admin_client):
    """SPEC row 4 from the admin: set, change, clear the pipeline's cron field."""
    etl = make_pipeline("etl", {})
    url = reverse("admin:geartrain_pipeline_change", args=[etl.pk])
    html = admin_client.get(url).content.decode()
    assert 'name="cron"' in html
    assert 'name="cron_timezone"' in html
    assert "None: enter a cron expression to launch on a schedule." in html

    data = pipeline_form(etl, cron="30 1 * * *", cron_timezone="Europe/Paris")
    response = admin_client.post(url, data)
    assert response.status_code == 302
    made = Schedule.objects.get()
    assert (made.name, made.cron, made.timezone, made.enabled, made.from_pipeline) == (
        "etl (pipeline cron)",
        "30 1 * * *",
        "Europe/Paris",
        True,
        True,
    )
    html = admin_client.get(url).content.decode()
    assert f'<a href="{change_url(made)}">etl (pipeline cron)</a> (next slot ' in html

    etl.refresh_from_db()
    response = admin_client.post(url, pipeline_form(etl, cron="@hourly", enabled=""))
    assert response.status_code == 302
    made.refresh_from_db()
    assert (made.cron, made.enabled, made.next_slot) == ("@hourly", False, None)

    etl.refresh_from_db()
    assert admin_client.post(url, pipeline_form(etl, cron="")).status_code == 302
    assert not Schedule.objects.exists()


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        (
            {"cron": "0 25 * * *"},
            "cron",
            "Cron field 'hour' has value '25', which is outside 0-23. Use a number "
            "from 0 to 23.",
        ),
        (
            {"cron": "@daily", "cron_timezone": "Europe/Pariss"},
            "cron_timezone",
            "Time zone 'Europe/Pariss' is not a known IANA time zone. Use a name such "
            "as 'Europe/Paris' or 'UTC'.",
        ),
    ],
)
def test_pipeline_admin_refuses_a_bad_cron_or_zone(
    admin_client, fields, field, message
):
    etl = make_pipeline("etl", {})
    url = reverse("admin:geartrain_pipeline_change", args=[etl.pk])
    response = admin_client.post(url, pipeline_form(etl, **fields))
    assert response.status_code == 200
    assert form_errors(response) == {field: [message]}
    assert not Schedule.objects.exists()


def test_a_blank_pipeline_zone_means_the_default(admin_client):
    etl = make_pipeline("etl", {})
    url = reverse("admin:geartrain_pipeline_change", args=[etl.pk])
    data = pipeline_form(etl, cron="@daily")
    data["cron_timezone"] = ""
    assert admin_client.post(url, data).status_code == 302
    assert Schedule.objects.get().timezone == "UTC"
