"""The pipeline admin: editing a definition on one page, Launch now, runs, pictures."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.db import transaction
from django.test import Client
from django.urls import reverse

from geartrain.admin import graphs
from geartrain.models import (
    Job,
    JobStatus,
    Pipeline,
    PipelineRun,
    RunStatus,
    Stage,
    Step,
    StepError,
    Trigger,
)
from geartrain.pipelines import engine, errors, launching, starts
from geartrain.worker import executor
from tests.acceptance.pipelines import make_pipeline
from tests.acceptance.workers import WorkerFactory, wait_until

pytestmark = pytest.mark.django_db

PIPELINES = "/admin/geartrain/pipeline/"
RUNS = "/admin/geartrain/pipelinerun/"
ERRORS = "/admin/geartrain/steperror/"
T = "tests.testapp.tasks."

ETL: dict[str, dict[str, Any]] = {
    "extract": {"steps": {"e1": {}, "e2": {}}},
    "transform": {"after": ["extract"], "steps": {"t1": {}}},
    "load": {"after": ["transform"], "steps": {"l1": {}}},
}


def change_url(pipeline: Pipeline) -> str:
    return reverse("admin:geartrain_pipeline_change", args=[pipeline.pk])


def launch_url(pipeline: Pipeline) -> str:
    return reverse("admin:geartrain_pipeline_launch", args=[pipeline.pk])


def run_url(run: PipelineRun | int, action: str = "change") -> str:
    pk = run if isinstance(run, int) else run.pk
    return reverse(f"admin:geartrain_pipelinerun_{action}", args=[pk])


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def errors_of(response) -> list[str]:
    """The main form's non-field errors, as the change page shows them."""
    return list(response.context["adminform"].form.non_field_errors())


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
    "view_pipeline",
    "change_pipeline",
    "add_stage",
    "change_stage",
    "delete_stage",
    "view_stage",
    "add_step",
    "change_step",
    "delete_step",
    "view_step",
)


# Building change-form POSTs -----------------------------------------------------------


def stage_row(stage: Stage | None = None, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {}
    if stage is not None:
        row = {
            "id": stage.pk,
            "name": stage.name,
            "depends_on": [s.pk for s in stage.depends_on.all()],
        }
    row.update(fields)
    return row


def step_row(step: Step | None = None, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"queue": "default", "priority": 0, "weight": "1"}
    row.update(critical=True, enabled=True, kwargs="{}", task_path="")
    # Browsers post the initial value of a field with a callable default.
    row["_initial_kwargs"] = "{}"
    if step is not None:
        row["_initial_kwargs"] = json.dumps(step.kwargs)
        row.update(
            id=step.pk,
            stage=step.stage_id,
            name=step.name,
            task_path=step.task_path,
            kwargs=json.dumps(step.kwargs),
            queue=step.queue,
            priority=step.priority,
            weight=str(step.weight),
            critical=step.critical,
            enabled=step.enabled,
            error_handler=step.error_handler,
            max_attempts=step.max_attempts or "",
            timeout=step.timeout or "",
        )
    row.update(fields)
    return row


def _formset(prefix: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {
        f"{prefix}-TOTAL_FORMS": len(rows),
        f"{prefix}-INITIAL_FORMS": sum(1 for r in rows if "id" in r),
        f"{prefix}-MIN_NUM_FORMS": 0,
        f"{prefix}-MAX_NUM_FORMS": 1000,
    }
    assert all("id" in r for r in rows[: data[f"{prefix}-INITIAL_FORMS"]])
    for index, row in enumerate(rows):
        for key, value in row.items():
            if value is True:
                value = "on"
            elif value is False or value is None:
                continue
            if key.startswith("_initial_"):
                data[f"initial-{prefix}-{index}-{key.removeprefix('_initial_')}"] = (
                    value
                )
            else:
                data[f"{prefix}-{index}-{key}"] = value
    return data


def post_data(
    pipeline: Pipeline | None,
    stages: list[dict[str, Any]] | None = None,
    steps: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """The change form as the browser posts it: the stored state plus changes."""
    data: dict[str, Any] = {"overlap": "forbid", "enabled": "on", "defaults": "{}"}
    if pipeline is not None:
        data.update(
            name=pipeline.name,
            description=pipeline.description,
            overlap=pipeline.overlap,
            defaults=json.dumps(pipeline.defaults),
        )
        data["initial-defaults"] = data["defaults"]
        if stages is None:
            stages = [stage_row(s) for s in pipeline.stages.order_by("pk")]
        if steps is None:
            steps = [
                step_row(s)
                for s in Step.objects.filter(stage__pipeline=pipeline).order_by("pk")
            ]
    data.update(fields)
    data = {k: v for k, v in data.items() if v is not False}
    data.update(_formset("stages", stages or []))
    if pipeline is not None:
        for row in steps or []:
            row.setdefault("stage", "")
        data.update(_formset("steps", steps or []))
    return data


def work(run: PipelineRun) -> PipelineRun:
    """Do a run's jobs in this process as a worker does: run, record, advance.

    One attempt per job (no retries); failures go through the steps' error handlers.
    """
    while jobs := list(
        Job.objects.filter(step_run__run=run, status=JobStatus.READY).order_by("id")
    ):
        for job in jobs:
            starts.step_started(job)
            outcome = executor.execute(job, None)
            failed = outcome.kind == "error"
            with transaction.atomic():
                Job.objects.filter(pk=job.pk).update(
                    status=JobStatus.FAILED if failed else JobStatus.SUCCEEDED,
                    attempts=1,
                    started_at=outcome.started_at,
                    finished_at=outcome.finished_at,
                    return_value=outcome.return_value,
                )
                job.refresh_from_db()
                engine.step_finished(job)
            if failed:
                assert outcome.error is not None
                details = {
                    "error_class": outcome.error_class,
                    "message": outcome.message,
                    "traceback": outcome.traceback,
                }
                assert job.step_run_id is not None
                errors.handle(job.step_run_id, outcome.error, details)
    run.refresh_from_db()
    return run


def stored(pipeline: Pipeline) -> tuple[Any, ...]:
    """Everything the change form can edit, as stored now."""
    pipeline = Pipeline.objects.get(pk=pipeline.pk)
    return (pipeline.description, pipeline.defaults, pipeline.to_spec())


# The pipeline list --------------------------------------------------------------------


def test_pipeline_list_shows_stages_and_the_last_run(admin_client):
    make_pipeline("etl", ETL)
    make_pipeline("reports", {}, enabled=False, overlap="allow")
    run = launching.launch("etl")
    response = admin_client.get(PIPELINES)
    assert response.status_code == 200
    html = response.content.decode()
    for title in ("Name", "Enabled", "Overlap", "Stages", "Last run", "Updated at"):
        assert f">{title}<" in html, title
    assert re.search(r'<td class="field-stage_count">3</td>', html)
    assert re.search(r'<td class="field-stage_count">0</td>', html)
    assert (
        f'<a href="{run_url(run)}">#{run.pk}</a> '
        '<span class="geartrain-status geartrain-status--running">running</span>'
    ) in html
    assert "geartrain/pipelines.css" in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"q": "et"}, {"etl"}),
        ({"enabled__exact": "0"}, {"reports"}),
        ({"overlap__exact": "allow"}, {"reports"}),
        ({}, {"etl", "reports"}),
    ],
)
def test_pipeline_search_and_filters(admin_client, query, expected):
    make_pipeline("etl", ETL)
    make_pipeline("reports", {}, enabled=False, overlap="allow")
    response = admin_client.get(PIPELINES, query)
    assert response.status_code == 200
    shown = {p.name for p in response.context["cl"].result_list}
    assert shown == expected


# The change page: pictures and buttons ------------------------------------------------


def test_change_page_draws_the_dag_with_step_counts(admin_client):
    etl = make_pipeline("etl", ETL)
    Step.objects.filter(name="e2").update(enabled=False)
    html = admin_client.get(change_url(etl)).content.decode()
    svg = re.search(r'<svg [^>]*class="geartrain-dag".*?</svg>', html, re.S)
    assert svg is not None
    picture = svg.group(0)
    assert re.findall(r'data-stage="([^"]+)"', picture) == [
        "extract",
        "transform",
        "load",
    ]
    assert picture.count('class="geartrain-dag-edge"') == 2
    assert "2 steps (1 disabled)" in picture
    assert ">1 step<" in picture
    # Launch now posts (with CSRF) to the launch view; Save and launch is offered.
    assert (
        f'<form id="geartrain-launch-form" method="post" action="{launch_url(etl)}">'
        in html
    )
    assert 'name="csrfmiddlewaretoken"' in html.split('id="geartrain-launch-form"')[1]
    assert 'name="_saveandlaunch"' in html
    assert "No run yet." in html


def test_change_page_escapes_names_in_the_picture(admin_client):
    evil = make_pipeline("evil", {"<script>x</script>": {"steps": {"s": {}}}})
    html = admin_client.get(change_url(evil)).content.decode()
    assert "<script>x</script>" not in html
    assert 'data-stage="&lt;script&gt;x&lt;/script&gt;"' in html


def test_launch_button_needs_the_launch_permission(staff_client):
    etl = make_pipeline("etl", ETL)
    editor = staff_client(*EDITOR)
    html = editor.get(change_url(etl)).content.decode()
    assert "geartrain-launch-form" not in html
    assert "_saveandlaunch" not in html
    launcher = staff_client(*EDITOR, "launch_pipeline")
    html = launcher.get(change_url(etl)).content.decode()
    assert "geartrain-launch-form" in html


# Editing: stages and steps on one page ------------------------------------------------


def test_add_a_stage_then_its_step_on_the_same_page(admin_client):
    etl = make_pipeline("etl", ETL)
    load = Stage.objects.get(name="load")
    stages = [stage_row(s) for s in etl.stages.order_by("pk")]
    stages.append(stage_row(name="report", depends_on=[load.pk]))
    response = admin_client.post(
        change_url(etl), post_data(etl, stages=stages, description="nightly")
    )
    assert response.status_code == 302, errors_of(response)
    report = Stage.objects.get(pipeline=etl, name="report")
    assert list(report.depends_on.values_list("name", flat=True)) == ["load"]
    assert Pipeline.objects.get(pk=etl.pk).description == "nightly"

    # The new stage is now offered to steps.
    html = admin_client.get(change_url(etl)).content.decode()
    assert f'<option value="{report.pk}">report</option>' in html
    steps = [step_row(s) for s in Step.objects.filter(stage__pipeline=etl)]
    steps.append(
        step_row(
            stage=report.pk,
            name="mail",
            task_path=T + "send_email",
            kwargs='{"to": "ops@example.com"}',
            queue="emails",
            priority=5,
            critical=False,
        )
    )
    response = admin_client.post(change_url(etl), post_data(etl, steps=steps))
    assert response.status_code == 302, errors_of(response)
    mail = Step.objects.get(name="mail")
    assert mail.stage == report
    assert mail.kwargs == {"to": "ops@example.com"}
    assert (mail.queue, mail.priority, mail.critical) == ("emails", 5, False)


def test_a_new_pipeline_gets_its_stages_and_then_steps(admin_client):
    response = admin_client.get(f"{PIPELINES}add/")
    assert response.status_code == 200
    assert [type(f).__name__ for f in response.context["inline_admin_formsets"]] == [
        "InlineAdminFormSet"
    ]
    data = post_data(None, stages=[stage_row(name="only")], name="fresh")
    response = admin_client.post(f"{PIPELINES}add/", data)
    assert response.status_code == 302
    fresh = Pipeline.objects.get(name="fresh")
    assert list(fresh.stages.values_list("name", flat=True)) == ["only"]


def test_steps_offer_registered_tasks_configured_queues_and_handlers(admin_client):
    etl = make_pipeline("etl", ETL)
    html = admin_client.get(change_url(etl)).content.decode()
    select = re.search(r'<select name="steps-0-task_path".*?</select>', html, re.S)
    assert select is not None
    assert f'<option value="{T}step_record" selected>' in select.group(0)
    assert f'<option value="{T}send_email">' in select.group(0)
    queues = re.search(r'<select name="steps-0-queue".*?</select>', html, re.S)
    assert queues is not None
    assert re.findall(r'<option value="(\w+)"', queues.group(0)) == [
        "default",
        "emails",
        "reports",
    ]
    handlers = re.search(
        r'<select name="steps-0-error_handler".*?</select>', html, re.S
    )
    assert handlers is not None
    assert "record the error" in handlers.group(0)
    assert f'<option value="{T}handler_two">' in handlers.group(0)
    # Only this pipeline's stages are offered to its steps and as dependencies.
    other = make_pipeline("other", {"elsewhere": {}})
    html = admin_client.get(change_url(etl)).content.decode()
    assert "elsewhere" not in html
    assert other.stages.get().name == "elsewhere"


# Invalid saves show every problem and store nothing -----------------------------------


def test_a_cycle_is_refused_and_nothing_is_stored(admin_client):
    etl = make_pipeline("etl", ETL)
    before = stored(etl)
    extract = Stage.objects.get(name="extract")
    load = Stage.objects.get(name="load")
    stages = [stage_row(s) for s in etl.stages.order_by("pk")]
    stages[0]["depends_on"] = [load.pk]  # extract after load: a cycle
    assert stages[0]["id"] == extract.pk
    data = post_data(etl, stages=stages, description="changed too")
    response = admin_client.post(change_url(etl), data)
    assert response.status_code == 200
    assert errors_of(response) == [
        "Stages 'extract' -> 'load' -> 'transform' -> 'extract' form a cycle in "
        "pipeline 'etl'. Remove one of these dependencies."
    ]
    html = response.content.decode()
    assert "Please correct the error below." in html
    assert stored(etl) == before
    # The form keeps what the user typed.
    assert 'id="id_description">\nchanged too</textarea>' in html


def test_an_unregistered_task_is_refused_and_nothing_is_stored(admin_client):
    etl = make_pipeline("etl", ETL)
    Step.objects.filter(name="l1").update(task_path="gone.task")
    before = stored(etl)
    steps = [step_row(s) for s in Step.objects.filter(stage__pipeline=etl)]
    for row in steps:
        if row["name"] == "e1":
            row["kwargs"] = '{"key": "changed"}'
    response = admin_client.post(change_url(etl), post_data(etl, steps=steps))
    assert response.status_code == 200
    assert errors_of(response) == [
        "Step 'l1' uses task 'gone.task', which is not registered. Register the task, "
        "or pick one of the registered tasks."
    ]
    assert stored(etl) == before
    html = response.content.decode()
    assert (
        '<option value="gone.task" selected>gone.task (not registered)</option>' in html
    )


def test_an_unknown_task_typed_into_a_new_step_is_a_field_error(admin_client):
    etl = make_pipeline("etl", ETL)
    before = stored(etl)
    steps = [step_row(s) for s in Step.objects.filter(stage__pipeline=etl)]
    extract = Stage.objects.get(name="extract")
    steps.append(step_row(stage=extract.pk, name="x", task_path="os.system"))
    response = admin_client.post(change_url(etl), post_data(etl, steps=steps))
    assert response.status_code == 200
    formset = response.context["inline_admin_formsets"][1].formset
    assert formset.errors[-1] == {
        "task_path": [
            "Task 'os.system' is not registered. Pick one of the registered tasks."
        ]
    }
    assert stored(etl) == before


def test_a_dependency_on_another_pipelines_stage_is_refused(admin_client):
    etl = make_pipeline("etl", ETL)
    other = make_pipeline("other", {"elsewhere": {}})
    foreign = other.stages.get()
    before = stored(etl)
    stages = [stage_row(s) for s in etl.stages.order_by("pk")]
    stages[0]["depends_on"] = [foreign.pk]
    response = admin_client.post(change_url(etl), post_data(etl, stages=stages))
    assert response.status_code == 200
    formset = response.context["inline_admin_formsets"][0].formset
    assert formset.errors[0] == {
        "depends_on": [
            f"Stage id {foreign.pk} is not a stage of this pipeline. A stage can only "
            "run after stages of the same pipeline; pick one of them."
        ]
    }
    assert stored(etl) == before
    assert not Stage.depends_on.through.objects.filter(to_stage=foreign).exists()


def test_bad_arguments_are_refused_with_every_problem(admin_client):
    etl = make_pipeline("etl", ETL)
    before = stored(etl)
    steps = [step_row(s) for s in Step.objects.filter(stage__pipeline=etl)]
    extract = Stage.objects.get(name="extract")
    steps.append(
        step_row(stage=extract.pk, name="sum", task_path=T + "add", kwargs='{"a": 1}')
    )
    steps.append(
        step_row(stage=extract.pk, name="odd", task_path=T + "noop", kwargs='{"z": 1}')
    )
    response = admin_client.post(change_url(etl), post_data(etl, steps=steps))
    assert response.status_code == 200
    assert errors_of(response) == [
        "Step 'odd' passes argument 'z' that task 'tests.testapp.tasks.noop' does "
        "not accept. The task accepts no arguments.",
        "Step 'sum' does not give required argument 'b' of task "
        "'tests.testapp.tasks.add'. Add it to the step's arguments or to the "
        "pipeline's default arguments.",
    ]
    assert stored(etl) == before
    assert not Step.objects.filter(name__in=["sum", "odd"]).exists()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "kwargs",
            "[1, 2]",
            "Keyword arguments must be a JSON object; got a list. Write a JSON "
            'object such as {"day": "2024-01-31"}.',
        ),
        ("priority", "101", "Ensure this value is less than or equal to 100."),
        ("weight", "-1", "Ensure this value is greater than or equal to 0."),
    ],
)
def test_step_field_errors(admin_client, field, value, message):
    etl = make_pipeline("etl", ETL)
    before = stored(etl)
    steps = [step_row(s) for s in Step.objects.filter(stage__pipeline=etl)]
    steps[0][field] = value
    response = admin_client.post(change_url(etl), post_data(etl, steps=steps))
    assert response.status_code == 200
    formset = response.context["inline_admin_formsets"][1].formset
    assert formset.errors[0] == {field: [message]}
    assert stored(etl) == before


def test_default_arguments_must_be_an_object(admin_client):
    etl = make_pipeline("etl", ETL)
    response = admin_client.post(change_url(etl), post_data(etl, defaults='"x"'))
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.errors["defaults"] == [
        "Default runtime arguments must be a JSON object; got a string. Write a JSON "
        'object such as {"day": "2024-01-31"}.'
    ]


def test_deleting_a_stage_that_a_changed_step_still_uses_is_refused(admin_client):
    etl = make_pipeline("etl", ETL)
    before = stored(etl)
    stages = [stage_row(s) for s in etl.stages.order_by("pk")]
    stages[2]["DELETE"] = True  # load
    steps = [step_row(s) for s in Step.objects.filter(stage__pipeline=etl)]
    for row in steps:
        if row["name"] == "l1":
            row["priority"] = 7
    response = admin_client.post(change_url(etl), post_data(etl, stages, steps))
    assert response.status_code == 200
    assert errors_of(response) == [
        "Step 'l1' is in stage 'load', which this save deletes. Move the step to "
        "another stage, or delete it too."
    ]
    assert stored(etl) == before


def test_deleting_a_stage_drops_its_steps_and_dependencies(admin_client):
    etl = make_pipeline("etl", ETL)
    stages = [stage_row(s) for s in etl.stages.order_by("pk")]
    stages[1]["DELETE"] = True  # transform; load depended on it
    response = admin_client.post(change_url(etl), post_data(etl, stages))
    assert response.status_code == 302, errors_of(response)
    assert sorted(etl.stages.values_list("name", flat=True)) == ["extract", "load"]
    assert not Step.objects.filter(name="t1").exists()
    assert not Stage.objects.get(name="load").depends_on.exists()


def test_an_editor_without_step_permissions_sees_steps_read_only(staff_client):
    etl = make_pipeline("etl", ETL)
    viewer = staff_client("view_pipeline", "change_pipeline", "view_stage", "view_step")
    response = viewer.get(change_url(etl))
    assert response.status_code == 200
    assert 'name="steps-0-task_path"' not in response.content.decode()
    before = stored(etl)
    steps = [step_row(s, priority=9) for s in Step.objects.filter(stage__pipeline=etl)]
    response = viewer.post(change_url(etl), post_data(etl, steps=steps))
    assert response.status_code == 302
    assert stored(etl) == before


# Launch now ---------------------------------------------------------------------------


def test_launch_view_needs_post_and_the_launch_permission(staff_client):
    etl = make_pipeline("etl", ETL)
    url = launch_url(etl)
    launcher = staff_client("view_pipeline", "launch_pipeline", "view_pipelinerun")
    assert launcher.get(url).status_code == 405
    assert staff_client("view_pipeline").post(url).status_code == 403
    assert staff_client("launch_pipeline").post(url).status_code == 403
    assert not PipelineRun.objects.exists()
    assert launcher.post(launch_url(Pipeline(pk=987654))).status_code == 404

    response = launcher.post(url, {"arguments": ""}, follow=True)
    run = PipelineRun.objects.get()
    assert response.redirect_chain[-1][0] == run_url(run)
    assert messages_of(response) == [f"Pipeline 'etl' launched as run {run.pk}."]
    assert (run.trigger, run.launched_by) == (Trigger.MANUAL, "staff-1")
    assert run.status == RunStatus.RUNNING
    # Someone who may launch but not see runs stays on the pipeline's page.
    run.status = RunStatus.SUCCEEDED
    run.save()
    blind = staff_client("view_pipeline", "launch_pipeline")
    response = blind.post(url, follow=True)
    second = PipelineRun.objects.exclude(pk=run.pk).get()
    assert response.redirect_chain[-1][0] == change_url(etl)
    assert messages_of(response) == [f"Pipeline 'etl' launched as run {second.pk}."]


def test_launch_with_runtime_arguments(admin_client):
    etl = make_pipeline("etl", {"s": {"steps": {"kw": {"task": "step_with_kwargs"}}}})
    response = admin_client.post(
        launch_url(etl), {"arguments": '{"day": "2024-01-31"}'}, follow=True
    )
    run = PipelineRun.objects.get()
    assert messages_of(response) == [f"Pipeline 'etl' launched as run {run.pk}."]
    assert run.arguments == {"day": "2024-01-31"}
    assert run.step_runs.get().kwargs == {"key": "kw", "day": "2024-01-31"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "{day: 1}",
            "Runtime arguments are not valid JSON (Expecting property name enclosed "
            "in double quotes: line 1 column 2 (char 1)). Write a JSON object such as "
            '{"day": "2024-01-31"}, or leave the field empty.',
        ),
        (
            "[1]",
            "Runtime arguments must be a JSON object; got a list. Write a JSON object "
            'such as {"day": "2024-01-31"}.',
        ),
    ],
)
def test_launch_refuses_bad_runtime_arguments(admin_client, text, message):
    etl = make_pipeline("etl", ETL)
    response = admin_client.post(launch_url(etl), {"arguments": text}, follow=True)
    assert response.redirect_chain[-1][0] == change_url(etl)
    assert messages_of(response) == [message]
    assert not PipelineRun.objects.exists()


def test_a_refused_launch_says_why(admin_client):
    etl = make_pipeline("etl", ETL)
    first = launching.launch("etl")
    response = admin_client.post(launch_url(etl), follow=True)
    assert response.redirect_chain[-1][0] == change_url(etl)
    assert messages_of(response) == [
        f"Pipeline 'etl' is already running (run {first.pk}) and runs one at a time. "
        f"Wait for run {first.pk} to finish, or cancel it."
    ]
    assert PipelineRun.objects.count() == 1
    html = response.content.decode()
    assert f'href="{run_url(first)}">#{first.pk}</a>' in html  # recent runs


def test_a_disabled_pipeline_can_still_be_launched_by_hand(admin_client):
    etl = make_pipeline("etl", ETL, enabled=False)
    response = admin_client.post(launch_url(etl), follow=True)
    run = PipelineRun.objects.get()
    assert messages_of(response) == [f"Pipeline 'etl' launched as run {run.pk}."]


def test_a_step_queue_no_longer_configured_is_an_error_not_a_crash(admin_client):
    etl = make_pipeline("etl", ETL)
    Step.objects.filter(name="e1").update(queue="retired")  # e.g. settings changed
    response = admin_client.post(launch_url(etl), follow=True)
    assert response.redirect_chain[-1][0] == change_url(etl)
    assert messages_of(response) == [
        "Step 'e1' uses queue 'retired', which is not configured. Use one of the "
        "configured queues: 'default', 'emails', 'reports'."
    ]
    assert not PipelineRun.objects.exists()
    # The change page offers the stored value, marked, so it can be fixed.
    html = response.content.decode()
    assert '<option value="retired" selected>retired (not configured)</option>' in html


def test_save_and_launch_saves_the_edits_then_launches(admin_client):
    etl = make_pipeline("etl", ETL)
    data = post_data(etl, description="edited", _saveandlaunch="Save and launch")
    response = admin_client.post(change_url(etl), data, follow=True)
    run = PipelineRun.objects.get()
    assert response.redirect_chain[-1][0] == run_url(run)
    assert messages_of(response) == [
        "The pipeline \u201cetl\u201d was changed successfully.",
        f"Pipeline 'etl' launched as run {run.pk}.",
    ]
    assert Pipeline.objects.get(pk=etl.pk).description == "edited"
    assert run.snapshot["description"] == "edited"


def test_save_and_launch_without_the_permission_saves_nothing(staff_client):
    etl = make_pipeline("etl", ETL)
    editor = staff_client(*EDITOR)
    data = post_data(etl, description="edited", _saveandlaunch="Save and launch")
    assert editor.post(change_url(etl), data).status_code == 403
    assert Pipeline.objects.get(pk=etl.pk).description == ""
    assert not PipelineRun.objects.exists()


def test_launch_view_needs_login_and_csrf(admin_user):
    etl = make_pipeline("etl", ETL)
    anonymous = Client().post(launch_url(etl))
    assert anonymous.status_code == 302
    assert "/admin/login/" in anonymous["Location"]
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin_user)
    assert strict.post(launch_url(etl)).status_code == 403
    assert not PipelineRun.objects.exists()


# The run list -------------------------------------------------------------------------


def test_run_list_shows_outcome_trigger_and_progress(admin_client):
    etl = make_pipeline(
        "etl",
        {
            "a": {"steps": {"ok": {}, "bad": {"kwargs": {"key": "b", "fail": True}}}},
            "b": {"after": ["a"], "steps": {"c": {}}},
        },
    )
    Step.objects.filter(name="bad").update(critical=False)
    run = work(launching.launch(etl, trigger=Trigger.MANUAL, launched_by="ada"))
    assert run.outcome == "succeeded with failures"
    running = launching.launch(make_pipeline("other", ETL))
    response = admin_client.get(RUNS)
    assert response.status_code == 200
    html = response.content.decode()
    for title in ("Pipeline", "Status", "Trigger", "Launched by", "Progress"):
        assert f">{title}<" in html, title
    assert (
        '<span class="geartrain-status geartrain-status--partial">'
        "succeeded with failures</span>"
    ) in html
    assert '<td class="field-progress">3/3 steps</td>' in html
    assert '<td class="field-progress">0/4 steps</td>' in html
    assert '<td class="field-launched_by">ada</td>' in html
    assert running.pk in {r.pk for r in response.context["cl"].result_list}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"status__exact": "succeeded"}, {"done"}),
        ({"trigger__exact": "manual"}, {"done"}),
        ({"pipeline_name": "other"}, {"busy"}),
        ({"q": "oth"}, {"busy"}),
        ({"q": "ada"}, {"done"}),
        ({"q": "#{busy}"}, {"busy"}),
        ({"q": "99999999999999999999999"}, set()),
    ],
)
def test_run_filters_and_search(admin_client, query, expected):
    done = work(
        launching.launch(
            make_pipeline("etl", ETL), trigger=Trigger.MANUAL, launched_by="ada"
        )
    )
    busy = launching.launch(make_pipeline("other", ETL))
    ids = {"done": done.pk, "busy": busy.pk}
    params = {key: value.format(**ids) for key, value in query.items()}
    response = admin_client.get(RUNS, params)
    assert response.status_code == 200
    shown = {r.pk for r in response.context["cl"].result_list}
    assert shown == {ids[name] for name in expected}
    html = admin_client.get(RUNS).content.decode()
    assert "?pipeline_name=etl" in html  # the filter lists the defined pipelines


# The run page -------------------------------------------------------------------------


def test_run_page_draws_the_dag_and_the_timeline(admin_client):
    etl = make_pipeline(
        "etl",
        {
            "extract": {
                "steps": {"e1": {}, "e2": {"kwargs": {"key": "e2", "fail": True}}}
            },
            "load": {"after": ["extract"], "steps": {"l1": {}}},
        },
    )
    run = work(launching.launch(etl))
    assert run.status == RunStatus.FAILED
    response = admin_client.get(run_url(run))
    assert response.status_code == 200
    html = response.content.decode()
    dag = re.search(r'<svg [^>]*class="geartrain-dag".*?</svg>', html, re.S)
    assert dag is not None
    stages = re.findall(r'data-stage="([^"]+)" data-status="([^"]+)"', dag.group(0))
    assert stages == [("extract", "failed"), ("load", "skipped")]
    assert ">failed · 2 steps, 1 failed</text>" in dag.group(0)
    assert ">skipped · 1 step</text>" in dag.group(0)
    assert 'href="#stage-1"' in dag.group(0)  # a box links to its stage's table
    timeline = re.search(r'<svg [^>]*class="geartrain-timeline".*?</svg>', html, re.S)
    assert timeline is not None
    bars = re.findall(
        r'<rect class="geartrain-bar" data-step="(\w+)" data-status="(\w+)"',
        timeline.group(0),
    )
    assert sorted(bars) == [("e1", "succeeded"), ("e2", "failed")]
    assert ">skipped</text>" in timeline.group(0)  # l1 never started: no bar


def test_run_page_lists_steps_with_jobs_and_escaped_tracebacks(admin_client):
    etl = make_pipeline(
        "etl",
        {"s": {"steps": {"bad": {"kwargs": {"key": "<b>x</b>", "fail": True}}}}},
    )
    run = work(launching.launch(etl))
    job = Job.objects.get(step_run__run=run)
    html = admin_client.get(run_url(run)).content.decode()
    assert (
        f'<a href="/admin/geartrain/job/{job.pk}/change/">#{job.pk} failed</a>' in html
    )
    assert '<code class="geartrain-error-class">builtins.RuntimeError</code>' in html
    traceback = re.search(r'<pre class="geartrain-traceback">(.*?)</pre>', html, re.S)
    assert traceback is not None
    assert "RuntimeError: step <b>x</b> failed" in unescape(traceback.group(1))
    assert "<b>x</b>" not in traceback.group(1)
    assert "Traceback (most recent call last)" in unescape(traceback.group(1))


def test_run_page_is_read_only_and_only_superusers_delete(admin_client, staff_client):
    run = launching.launch(make_pipeline("etl", ETL))
    html = admin_client.get(run_url(run)).content.decode()
    assert 'name="_save"' not in html
    assert admin_client.get(f"{RUNS}add/").status_code == 403
    assert admin_client.post(run_url(run), {"launched_by": "x"}).status_code == 403
    viewer = staff_client("view_pipelinerun", "delete_pipelinerun")
    assert viewer.get(run_url(run, "delete")).status_code == 403
    assert "delete_selected" not in viewer.get(RUNS).content.decode()
    response = admin_client.post(run_url(run, "delete"), {"post": "yes"})
    assert response.status_code == 302
    assert not PipelineRun.objects.filter(pk=run.pk).exists()


# Cancel, resume, dismiss --------------------------------------------------------------


def test_cancel_needs_post_and_its_permission(staff_client):
    run = launching.launch(make_pipeline("etl", ETL))
    url = run_url(run, "cancel")
    canceller = staff_client("view_pipelinerun", "cancel_pipelinerun")
    assert canceller.get(url).status_code == 405
    assert staff_client("view_pipelinerun").post(url).status_code == 403
    assert staff_client("cancel_pipelinerun").post(url).status_code == 403
    assert staff_client("view_pipelinerun").get(run_url(run)).status_code == 200
    assert (
        url not in staff_client("view_pipelinerun").get(run_url(run)).content.decode()
    )
    run.refresh_from_db()
    assert not run.cancel_requested

    assert f'action="{url}"' in canceller.get(run_url(run)).content.decode()
    # A step is running: the run stops after it.
    running = Job.objects.filter(step_run__run=run).order_by("id")[0]
    starts.step_started(running)
    response = canceller.post(url, follow=True)
    assert messages_of(response) == [
        f"Run {run.pk} will stop after its running steps finish."
    ]
    run.refresh_from_db()
    assert run.cancel_requested
    assert run.status == RunStatus.RUNNING
    assert url not in response.content.decode()  # no second cancel
    response = canceller.post(url, follow=True)
    assert messages_of(response) == [
        f"Run {run.pk} was not cancelled: it is running (cancel requested). Only "
        "pending or running runs can be cancelled, once."
    ]


def test_cancel_with_nothing_running_cancels_at_once(admin_client):
    run = launching.launch(make_pipeline("etl", ETL))
    response = admin_client.post(run_url(run, "cancel"), follow=True)
    assert messages_of(response) == [
        f"Run {run.pk} was cancelled; no step was running."
    ]
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert set(
        Job.objects.filter(step_run__run=run).values_list("status", flat=True)
    ) == {JobStatus.CANCELLED}


def test_resume_and_dismiss_a_failed_run(staff_client):
    etl = make_pipeline(
        "etl",
        {
            "a": {"steps": {"ok": {}, "bad": {"kwargs": {"key": "b", "fail": True}}}},
            "b": {"after": ["a"], "steps": {"c": {}}},
        },
    )
    failed = work(launching.launch(etl))
    assert failed.status == RunStatus.FAILED
    resume, dismiss = run_url(failed, "resume"), run_url(failed, "dismiss")
    viewer = staff_client("view_pipelinerun", "cancel_pipelinerun")
    assert viewer.post(resume).status_code == 403
    assert viewer.post(dismiss).status_code == 403
    html = viewer.get(run_url(failed)).content.decode()
    assert resume not in html
    assert dismiss not in html

    resumer = staff_client("view_pipelinerun", "resume_pipelinerun")
    assert resumer.get(resume).status_code == 405
    assert resumer.get(dismiss).status_code == 405
    html = resumer.get(run_url(failed)).content.decode()
    assert f'action="{resume}"' in html
    assert f'action="{dismiss}"' in html
    assert run_url(failed, "cancel") not in html

    response = resumer.post(dismiss, follow=True)
    assert messages_of(response) == [
        f"Run {failed.pk} dismissed: it no longer holds the scheduled launches of "
        "pipeline 'etl'."
    ]
    failed.refresh_from_db()
    assert failed.dismissed
    response = resumer.post(dismiss, follow=True)
    assert messages_of(response) == [
        f"Run {failed.pk} was already dismissed; nothing changed."
    ]

    response = resumer.post(resume, follow=True)
    new = PipelineRun.objects.get(resumed_from=failed)
    assert response.redirect_chain[-1][0] == run_url(new)
    assert messages_of(response) == [
        f"Run {failed.pk} resumed as run {new.pk}: only the steps that did not "
        "succeed run again."
    ]
    assert new.trigger == Trigger.RESUME
    assert new.launched_by == "staff-2"
    html = response.content.decode()
    assert f'href="{run_url(failed)}">#{failed.pk}</a>' in html  # resumed from


def test_resume_refuses_a_definition_that_no_longer_validates(admin_client):
    etl = make_pipeline(
        "etl", {"s": {"steps": {"bad": {"kwargs": {"key": "k", "fail": True}}}}}
    )
    failed = work(launching.launch(etl))
    snapshot = failed.snapshot
    snapshot["stages"][0]["steps"][0]["task"] = "gone.task"  # removed since
    PipelineRun.objects.filter(pk=failed.pk).update(snapshot=snapshot)
    response = admin_client.post(run_url(failed, "resume"), follow=True)
    assert response.redirect_chain[-1][0] == run_url(failed)
    assert messages_of(response) == [
        f"Run {failed.pk} was not resumed: Step 'bad' uses task 'gone.task', which "
        "is not registered. Register the task, or pick one of the registered tasks."
    ]
    assert PipelineRun.objects.count() == 1


def test_resume_and_dismiss_refuse_runs_in_the_wrong_state(admin_client):
    run = work(launching.launch(make_pipeline("etl", ETL)))
    assert run.status == RunStatus.SUCCEEDED
    response = admin_client.post(run_url(run, "resume"), follow=True)
    assert messages_of(response) == [
        f"Run {run.pk} was not resumed: it is succeeded. Only failed or cancelled "
        "runs can be resumed."
    ]
    response = admin_client.post(run_url(run, "dismiss"), follow=True)
    assert messages_of(response) == [
        f"Run {run.pk} of pipeline 'etl' is succeeded, not failed; only a failed run "
        "can be dismissed. A dismissed run no longer holds scheduled launches."
    ]
    assert not PipelineRun.objects.filter(resumed_from=run).exists()
    assert admin_client.post(run_url(987654, "resume")).status_code == 404


# Step errors --------------------------------------------------------------------------


def test_step_error_list_search_and_detail(admin_client):
    etl = make_pipeline(
        "etl", {"s": {"steps": {"bad": {"kwargs": {"key": "k", "fail": True}}}}}
    )
    run = work(launching.launch(etl))
    error = StepError.objects.get()
    response = admin_client.get(ERRORS)
    assert response.status_code == 200
    html = response.content.decode()
    assert f'<a href="{run_url(run)}">#{run.pk}</a>' in html
    assert "step k failed" in html
    for term in ("RuntimeError", "bad", "step k"):
        found = admin_client.get(ERRORS, {"q": term})
        assert found.status_code == 200
        assert [e.pk for e in found.context["cl"].result_list] == [error.pk], term
    detail = admin_client.get(f"{ERRORS}{error.pk}/change/").content.decode()
    assert (
        '<pre class="geartrain-traceback">Traceback (most recent call last)' in detail
    )
    assert admin_client.get(f"{ERRORS}add/").status_code == 403


# A real worker ------------------------------------------------------------------------


@pytest.fixture
def worker_factory(tmp_path: Path, transactional_db: None) -> Iterator[WorkerFactory]:
    marks = tmp_path / "marks"
    marks.mkdir()
    factory = WorkerFactory(marks)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.mark.django_db(transaction=True)
def test_a_run_done_by_a_real_worker_shows_bars_for_every_step(
    admin_client, worker_factory
):
    etl = make_pipeline(
        "etl",
        {
            "extract": {"steps": {"e1": {}, "e2": {}}},
            "load": {"after": ["extract"], "steps": {"l1": {"max_attempts": 1}}},
        },
    )
    run = launching.launch(etl)
    worker = worker_factory("--burst", "--concurrency", "2")
    try:
        assert worker.wait(timeout=60) == 0, worker.stderr()
    except subprocess.TimeoutExpired:
        pytest.fail(f"The burst worker did not finish:\n{worker.stderr()}")
    wait_until(lambda: PipelineRun.objects.get(pk=run.pk).finished_at, 10, "the run")
    html = admin_client.get(run_url(run)).content.decode()
    bars = re.findall(
        r'class="geartrain-bar" data-step="(\w+)" data-status="(\w+)"', html
    )
    assert sorted(bars) == [
        ("e1", "succeeded"),
        ("e2", "succeeded"),
        ("l1", "succeeded"),
    ]
    assert '<td class="field-progress">' not in html
    assert "3/3 steps" in html


# Pictures (pure functions) ------------------------------------------------------------


@pytest.mark.django_db(False)
def test_dag_layout_puts_layers_in_columns_near_their_dependencies():
    layers = [["a", "z"], ["b", "y"], ["c"]]
    depends = {"b": ["z"], "y": ["a"], "c": ["b", "y"]}
    assert graphs.order_layers(layers, depends) == [["a", "z"], ["y", "b"], ["c"]]
    positions, width, height = graphs.dag_positions(layers, depends)
    assert (
        positions["a"][0] == positions["z"][0] < positions["y"][0] < positions["c"][0]
    )
    assert positions["y"][1] < positions["b"][1]
    assert positions["c"][1] == (positions["y"][1] + positions["b"][1]) / 2
    svg = graphs.dag_svg(layers, depends, statuses={"c": "failed"})
    assert svg.count('class="geartrain-dag-edge"') == 4
    assert f'width="{width:.0f}" height="{height:.0f}"' in svg
    assert 'data-stage="c" data-status="failed"' in svg
    assert 'stroke="#c62828"' in svg


@pytest.mark.django_db(False)
def test_pictures_escape_text_and_shorten_long_names():
    name = "<img src=x onerror=alert(1)>" + "x" * 40
    svg = graphs.dag_svg([[name]], {}, captions={name: "<i>1</i>"}, links={name: "#s"})
    assert "<img" not in svg
    assert "<i>" not in svg
    assert "&lt;img src=x onerror=alert(1)&gt;" in svg  # full name in the tooltip
    assert "&lt;img src=x onerror=aler…</text>" in svg  # shortened label
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    bar = {"name": name, "status": "succeeded", "started_at": t0, "finished_at": t0}
    timeline = graphs.timeline_svg([("<s>", [bar])], now=t0)
    assert "<s>" not in timeline
    assert "<img" not in timeline


@pytest.mark.django_db(False)
def test_timeline_bars_scale_with_time_and_running_bars_reach_now():
    t0 = datetime(2024, 1, 1, tzinfo=UTC)

    def bar(
        name: str, start: float | None, end: float | None, status: str
    ) -> dict[str, Any]:
        return {
            "name": name,
            "status": status,
            "started_at": None if start is None else t0 + timedelta(seconds=start),
            "finished_at": None if end is None else t0 + timedelta(seconds=end),
        }

    groups = [
        ("a", [bar("one", 0, 5, "succeeded"), bar("two", 5, 10, "failed")]),
        ("b", [bar("three", 10, None, "running"), bar("four", None, None, "pending")]),
    ]
    svg = graphs.timeline_svg(groups, now=t0 + timedelta(seconds=20))
    rects = dict(
        re.findall(
            r'data-step="(\w+)" data-status="\w+" x="[\d.]+" y="[\d.]+" '
            r'width="([\d.]+)"',
            svg,
        )
    )
    quarter = graphs.CHART_W / 4
    assert float(rects["one"]) == pytest.approx(quarter)
    assert float(rects["two"]) == pytest.approx(quarter)
    assert float(rects["three"]) == pytest.approx(2 * quarter)
    assert "four" not in rects
    assert ">pending</text>" in svg
    assert ">0 s</text>" in svg
    assert ">20 s</text>" in svg
    assert graphs.tick_step(20) == 5
    assert graphs.tick_step(0.003) == 0.001
    assert graphs.tick_step(10 * 86400) == 2 * 86400
    empty = graphs.timeline_svg([("a", [bar("x", None, None, "pending")])], now=t0)
    assert "No step has started yet." in empty
    assert "No stages yet." in graphs.dag_svg([], {})


def test_duplicate_stage_and_step_names_are_form_errors(admin_client):
    etl = make_pipeline("etl", ETL)
    before = stored(etl)
    stages = [stage_row(s) for s in etl.stages.order_by("pk")]
    stages.append(stage_row(name="extract"))
    response = admin_client.post(change_url(etl), post_data(etl, stages=stages))
    assert response.status_code == 200
    formset = response.context["inline_admin_formsets"][0].formset
    assert formset.non_form_errors() == [
        "Stage name 'extract' is used 2 times in pipeline 'etl'. Give each stage of "
        "a pipeline its own name."
    ]
    extract = Stage.objects.get(name="extract")
    steps = [step_row(s) for s in Step.objects.filter(stage__pipeline=etl)]
    steps.append(step_row(stage=extract.pk, name="e1", task_path=T + "noop"))
    response = admin_client.post(change_url(etl), post_data(etl, steps=steps))
    assert response.status_code == 200
    formset = response.context["inline_admin_formsets"][1].formset
    assert formset.non_form_errors() == [
        "Step name 'e1' is used 2 times in stage 'extract'. Give each step of a "
        "stage its own name."
    ]
    assert stored(etl) == before


@pytest.mark.django_db(False)
def test_timeline_draws_at_most_max_rows(monkeypatch):
    monkeypatch.setattr(graphs, "MAX_ROWS", 2)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    bars = [
        {"name": f"s{i}", "status": "succeeded", "started_at": t0, "finished_at": t0}
        for i in range(3)
    ]
    svg = graphs.timeline_svg([("a", bars), ("b", bars)], now=t0)
    assert svg.count('class="geartrain-bar"') == 2
    assert ">4 more step runs are not drawn.</text>" in svg
