"""``geartrain launch``, ``cancel``, ``resume`` and ``dismiss``; output exact.

Runs launched here are not executed (no worker);
``tests/acceptance/test_launch_wait.py`` follows runs to their end with real workers.
"""

from __future__ import annotations

import getpass
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from geartrain.management.subcommands.launch import progress_line
from geartrain.models import (
    Job,
    JobStatus,
    Pipeline,
    PipelineRun,
    RunStatus,
    Step,
    StepRun,
    Trigger,
)
from geartrain.pipelines import api
from geartrain.pipelines.sync import sync
from tests.testapp import pipelines as fixtures

pytestmark = pytest.mark.django_db

ETL = "fixture-etl"


def run(*args: str) -> list[str]:
    out = StringIO()
    call_command("geartrain", *args, stdout=out)
    return out.getvalue().splitlines()


def error_of(*args: str) -> str:
    with pytest.raises(CommandError) as info:
        run(*args)
    return str(info.value)


@pytest.fixture
def etl() -> Pipeline:
    sync([fixtures.etl])
    return Pipeline.objects.get(name=ETL)


def failed_run(pipeline: Pipeline) -> PipelineRun:
    """A finished, failed run row (as a worker would leave it)."""
    now = timezone.now()
    return PipelineRun.objects.create(
        pipeline=pipeline,
        pipeline_name=pipeline.name,
        trigger=Trigger.SCHEDULE,
        status=RunStatus.FAILED,
        started_at=now - timedelta(seconds=5),
        finished_at=now,
    )


# launch -------------------------------------------------------------------------------


def test_launch_starts_a_manual_run_with_parsed_arguments(etl):
    lines = run(
        "launch",
        ETL,
        "--arg",
        "n=5",
        "--arg",
        "name=x",
        "--arg",
        "flag=true",
        "--arg",
        "ratio=0.5",
        "--arg",
        "items=[1, 2]",
        "--arg",
        "day=2024-01-31",
        "--arg",
        "odd=NaN",
        "--arg",
        "big=1e999",
        "--arg",
        "eq=a=b",
        "--arg",
        "empty=",
    )

    run_ = PipelineRun.objects.get()
    assert lines == [f"Launched run {run_.pk} of pipeline 'fixture-etl' with 3 steps."]
    assert run_.arguments == {
        "n": 5,
        "name": "x",
        "flag": True,
        "ratio": 0.5,
        "items": [1, 2],
        "day": "2024-01-31",
        "odd": "NaN",
        "big": "1e999",
        "eq": "a=b",
        "empty": "",
    }
    assert run_.trigger == Trigger.MANUAL
    assert run_.launched_by == getpass.getuser()
    assert run_.status == RunStatus.RUNNING
    customers = StepRun.objects.get(run=run_, step_name="customers")
    assert customers.kwargs["n"] == 5  # the task takes **extra
    assert Job.objects.filter(step_run__run=run_).count() == 2


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "novalue",
            "Error: argument --arg: 'novalue' has no '='. Write each argument as "
            "key=value, such as --arg day=2024-01-31 or --arg limit=100.",
        ),
        (
            "=5",
            "Error: argument --arg: '=5' has an empty key. Write each argument as "
            "key=value, such as --arg limit=100.",
        ),
    ],
)
def test_launch_rejects_an_argument_without_key_or_value(etl, value, message):
    assert error_of("launch", ETL, "--arg", value) == message
    assert PipelineRun.objects.count() == 0


def test_launch_rejects_an_argument_given_twice(etl):
    assert error_of("launch", ETL, "--arg", "n=1", "--arg", "n=2") == (
        "--arg 'n' is given twice. Give each runtime argument once."
    )
    assert PipelineRun.objects.count() == 0


def test_launch_is_refused_while_a_run_is_active(etl):
    first = run("launch", ETL)
    active = PipelineRun.objects.get()

    assert first == [
        f"Launched run {active.pk} of pipeline 'fixture-etl' with 3 steps."
    ]
    assert error_of("launch", ETL) == (
        f"Pipeline 'fixture-etl' is already running (run {active.pk}) and runs one at "
        f"a time. Wait for run {active.pk} to finish, or cancel it."
    )
    assert PipelineRun.objects.count() == 1


def test_launch_of_an_unknown_pipeline_is_an_error():
    assert error_of("launch", "nope") == (
        "No pipeline is named 'nope'. Create it in the admin or with `geartrain sync`."
    )


def test_launch_after_a_failed_run_says_to_resume_or_dismiss_it(etl):
    failed = failed_run(etl)

    assert error_of("launch", ETL) == (
        f"The latest run of pipeline 'fixture-etl' (run {failed.pk}) failed. Resume "
        f"or dismiss run {failed.pk} first, or set GEARTRAIN['OVERLAP_FAILED'] = True."
    )
    assert run("dismiss", str(failed.pk)) == [
        f"Run {failed.pk} of pipeline 'fixture-etl' is dismissed; it no longer holds "
        f"scheduled launches."
    ]
    assert run("launch", ETL)[0].startswith("Launched run ")


def test_launch_of_a_step_on_an_unconfigured_queue_is_an_error(etl):
    Step.objects.filter(name="orders").update(queue="nowhere")  # an admin edit

    assert error_of("launch", ETL) == (
        "Pipeline 'fixture-etl' cannot run; fix its definition first:\n"
        "Step 'orders' uses queue 'nowhere', which is not configured. Use one of the "
        "configured queues: 'default', 'emails', 'reports'."
    )
    assert PipelineRun.objects.count() == 0
    assert Job.objects.count() == 0


# cancel -------------------------------------------------------------------------------


def test_cancel_stops_a_run_whose_steps_have_not_started(etl):
    run("launch", ETL)
    active = PipelineRun.objects.get()

    assert run("cancel", str(active.pk)) == [
        f"Run {active.pk} of pipeline 'fixture-etl' is cancelled."
    ]
    active.refresh_from_db()
    assert active.status == RunStatus.CANCELLED
    assert set(Job.objects.values_list("status", flat=True)) == {JobStatus.CANCELLED}
    assert error_of("cancel", str(active.pk)) == (
        f"Run {active.pk} of pipeline 'fixture-etl' already finished (cancelled); "
        f"only a pending or running run can be cancelled."
    )


def test_cancel_lets_running_steps_finish(etl):
    run("launch", ETL)
    active = PipelineRun.objects.get()
    StepRun.objects.filter(run=active, step_name="orders").update(
        status=RunStatus.RUNNING, started_at=timezone.now()
    )
    Job.objects.filter(step_run__step_name="orders").update(status=JobStatus.RUNNING)

    assert run("cancel", str(active.pk)) == [
        f"Run {active.pk} of pipeline 'fixture-etl' is being cancelled: waiting steps "
        f"were cancelled, 1 running step(s) finish, nothing new starts."
    ]
    active.refresh_from_db()
    assert (active.status, active.cancel_requested) == (RunStatus.RUNNING, True)


@pytest.mark.parametrize("command", ["cancel", "resume", "dismiss"])
def test_an_unknown_run_id_is_an_error(command):
    assert error_of(command, "987654") == (
        "No pipeline run has the id 987654. Look up run ids in the admin, under "
        "Pipeline runs."
    )


@pytest.mark.parametrize("command", ["cancel", "resume", "dismiss"])
def test_a_run_id_must_be_a_positive_number(command):
    assert error_of(command, "0") == (
        "Error: argument run_id: '0' is not a whole number of 1 or more."
    )


# resume -------------------------------------------------------------------------------


def test_resume_starts_a_new_run_of_the_steps_that_did_not_succeed(etl):
    run("launch", ETL, "--arg", "n=5")
    old = PipelineRun.objects.get()
    run("cancel", str(old.pk))

    lines = run("resume", str(old.pk))

    new = PipelineRun.objects.exclude(pk=old.pk).get()
    assert lines == [
        f"Run {old.pk} of pipeline 'fixture-etl' resumed as run {new.pk}: 3 step(s) "
        f"run again, 0 succeeded step(s) kept."
    ]
    assert (new.trigger, new.resumed_from_id, new.arguments) == (
        Trigger.RESUME,
        old.pk,
        {"n": 5},
    )
    assert new.launched_by == getpass.getuser()


def test_resume_of_a_running_run_is_an_error(etl):
    run("launch", ETL)
    active = PipelineRun.objects.get()

    assert error_of("resume", str(active.pk)) == (
        f"Run {active.pk} of pipeline 'fixture-etl' is running; only failed or "
        f"cancelled runs can be resumed."
    )
    assert PipelineRun.objects.count() == 1


# dismiss ------------------------------------------------------------------------------


def test_dismiss_a_failed_run_twice(etl):
    failed = failed_run(etl)
    run("dismiss", str(failed.pk))

    assert run("dismiss", str(failed.pk)) == [
        f"Run {failed.pk} of pipeline 'fixture-etl' was already dismissed."
    ]
    failed.refresh_from_db()
    assert failed.dismissed


def test_dismiss_of_a_run_that_did_not_fail_is_an_error(etl):
    run("launch", ETL)
    active = PipelineRun.objects.get()

    assert error_of("dismiss", str(active.pk)) == (
        f"Run {active.pk} of pipeline 'fixture-etl' is running, not failed; only a "
        f"failed run can be dismissed. A dismissed run no longer holds scheduled "
        f"launches."
    )
    active.refresh_from_db()
    assert not active.dismissed


# progress -----------------------------------------------------------------------------


def test_progress_estimates_the_time_left_from_the_weights(etl):
    run("launch", ETL)
    active = PipelineRun.objects.get()
    start = timezone.now() - timedelta(seconds=10)
    PipelineRun.objects.filter(pk=active.pk).update(started_at=start)
    steps = StepRun.objects.filter(run=active)
    before = api.progress(active.pk)
    steps.filter(step_name="orders").update(status=RunStatus.SUCCEEDED)  # weight 2.5
    steps.filter(step_name="customers").update(status=RunStatus.RUNNING)  # weight 1
    now = api.progress(active.pk)

    assert before.left is None
    assert (now.total, now.done, now.running, now.failed) == (3, 1, 1, 0)
    # 2 weight left (customers, warehouse) at 2.5 weight per ~10 seconds: ~8 s.
    assert now.left is not None
    assert timedelta(seconds=7.9) < now.left < timedelta(seconds=8.5)
    assert not now.final


@pytest.mark.parametrize(
    ("elapsed", "left", "line"),
    [
        (12.04, 8, "[12.0s] steps 3/7 done, 2 running, 1 failed, about 8.0s left"),
        (75, None, "[1m15s] steps 3/7 done, 2 running, 1 failed, time left unknown"),
        (3725, 4000, "[1h02m] steps 3/7 done, 2 running, 1 failed, about 1h06m left"),
    ],
)
def test_progress_line(elapsed, left, line):
    progress = api.Progress(
        status=RunStatus.RUNNING,
        outcome="running",
        total=7,
        done=3,
        running=2,
        failed=1,
        elapsed=timedelta(seconds=elapsed),
        left=None if left is None else timedelta(seconds=left),
    )

    assert progress_line(progress) == line
