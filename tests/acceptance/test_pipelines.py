"""Pipelines end to end with real worker processes (SPEC checklist rows 8-29)."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import pytest
from django.db import transaction
from django.test import override_settings

from geartrain.models import Job, PipelineRun, RunStatus, Step, StepError
from geartrain.pipelines import engine, launching
from tests.acceptance.pipelines import make_pipeline
from tests.acceptance.workers import WorkerFactory, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def marked(marks: Path, name: str = "record") -> list[str]:
    path = marks / name
    return path.read_text().split() if path.exists() else []


def finished(run: PipelineRun, timeout: float = 60) -> PipelineRun:
    def done() -> bool:
        run.refresh_from_db()
        return run.status not in (RunStatus.PENDING, RunStatus.RUNNING)

    wait_until(done, timeout, f"run {run.pk} to finish")
    return run


def statuses(run: PipelineRun) -> dict[str, str]:
    return {s.step_name: s.status for s in run.step_runs.all()}


def stage_statuses(run: PipelineRun) -> dict[str, str]:
    return {s.stage_name: s.status for s in run.stage_runs.all()}


DIAMOND = {
    "a": {"steps": {"a1": {}, "a2": {}}},
    "b": {"after": ["a"], "steps": {"b1": {}, "b2": {}}},
    "c": {"after": ["a"], "steps": {"c1": {}}},
    "d": {"after": ["b", "c"], "steps": {"d1": {}}},
}


def test_diamond_runs_every_step_once_in_dependency_order(
    start_worker: WorkerFactory, marks: Path
):
    make_pipeline("diamond", DIAMOND)
    run = launching.launch("diamond")
    worker = start_worker("--concurrency", "2")
    finished(run)
    assert run.status == RunStatus.SUCCEEDED
    assert run.outcome == "succeeded"
    order = marked(marks)
    assert Counter(order) == Counter(["a1", "a2", "b1", "b2", "c1", "d1"])
    assert order.index("d1") == 5
    assert max(order.index("a1"), order.index("a2")) < min(
        order.index("b1"), order.index("c1")
    )
    assert set(stage_statuses(run).values()) == {RunStatus.SUCCEEDED}
    assert run.finished_at >= run.started_at
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0


def test_root_stages_start_together_at_launch():
    make_pipeline("roots", {"x": {"steps": {"x1": {}}}, "y": {"steps": {"y1": {}}}})
    run = launching.launch("roots")
    assert stage_statuses(run) == {"x": RunStatus.RUNNING, "y": RunStatus.RUNNING}
    assert Job.objects.filter(step_run__run=run).count() == 2


def test_steps_are_dispatched_heaviest_first(start_worker: WorkerFactory, marks: Path):
    steps = {"w1": {"weight": 1}, "w5": {"weight": 5}, "w3": {"weight": 3}}
    make_pipeline("weights", {"s": {"steps": steps}})
    run = launching.launch("weights")
    start_worker("--burst", "--concurrency", "1").wait()
    assert finished(run).status == RunStatus.SUCCEEDED
    assert marked(marks) == ["w5", "w3", "w1"]


def test_disabled_step_and_empty_stage_do_not_block_the_run(
    start_worker: WorkerFactory, marks: Path
):
    make_pipeline(
        "gaps",
        {
            "empty": {},
            "s": {"after": ["empty"], "steps": {"on": {}, "off": {"enabled": False}}},
            "t": {"after": ["s"], "steps": {"last": {}}},
        },
    )
    run = launching.launch("gaps")
    start_worker("--burst", "--concurrency", "1").wait()
    assert finished(run).status == RunStatus.SUCCEEDED
    assert statuses(run) == {
        "on": RunStatus.SUCCEEDED,
        "off": RunStatus.SKIPPED,
        "last": RunStatus.SUCCEEDED,
    }
    assert stage_statuses(run)["empty"] == RunStatus.SUCCEEDED
    assert marked(marks) == ["on", "last"]


def test_non_critical_failure_lets_the_run_go_on(
    start_worker: WorkerFactory, marks: Path
):
    make_pipeline(
        "soft",
        {
            "s": {
                "steps": {
                    "ok": {},
                    "bad": {
                        "critical": False,
                        "max_attempts": 1,
                        "kwargs": {"key": "bad", "fail": True},
                    },
                }
            },
            "t": {"after": ["s"], "steps": {"after": {}}},
        },
    )
    run = launching.launch("soft")
    start_worker("--burst", "--concurrency", "1").wait()
    assert finished(run).status == RunStatus.SUCCEEDED
    assert run.has_failures
    assert run.outcome == "succeeded with failures"
    assert statuses(run)["bad"] == RunStatus.FAILED
    assert "after" in marked(marks)
    error = StepError.objects.get()
    assert error.error_type == "builtins.RuntimeError"
    assert error.message == "step bad failed"
    assert "RuntimeError: step bad failed" in error.traceback


def test_critical_failure_stops_the_run(start_worker: WorkerFactory, marks: Path):
    steps = {
        "boom": {
            "weight": 9,
            "max_attempts": 1,
            "kwargs": {"key": "boom", "fail": True, "seconds": 0.7},
        },
        "slow": {"weight": 8, "kwargs": {"key": "slow", "seconds": 1.5}},
        "later1": {"weight": 1},
        "later2": {"weight": 1},
    }
    make_pipeline(
        "hard", {"s": {"steps": steps}, "t": {"after": ["s"], "steps": {"n": {}}}}
    )
    run = launching.launch("hard")
    worker = start_worker("--concurrency", "2")
    finished(run)
    assert run.status == RunStatus.FAILED
    result = statuses(run)
    assert result["boom"] == RunStatus.FAILED
    assert result["slow"] == RunStatus.SUCCEEDED  # running steps finish
    assert result["later1"] == result["later2"] == RunStatus.SKIPPED
    assert result["n"] == RunStatus.SKIPPED
    assert stage_statuses(run) == {"s": RunStatus.FAILED, "t": RunStatus.SKIPPED}
    assert "n" not in marked(marks)
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0


def test_error_handlers_are_called_and_a_failing_handler_breaks_nothing(
    start_worker: WorkerFactory, marks: Path
):
    def failing(key: str, handler: str) -> dict:
        return {
            "critical": False,
            "max_attempts": 1,
            "error_handler": f"tests.testapp.tasks.{handler}",
            "kwargs": {"key": key, "fail": True},
        }

    make_pipeline(
        "handlers",
        {
            "s": {
                "steps": {
                    "h1": failing("h1", "handler_one"),
                    "h2": failing("h2", "handler_two"),
                    "h3": failing("h3", "handler_that_raises"),
                }
            }
        },
    )
    run = launching.launch("handlers")
    start_worker("--burst", "--concurrency", "1").wait()
    assert finished(run).status == RunStatus.SUCCEEDED
    assert sorted(marked(marks, "handled")) == ["one:RuntimeError", "two:h2"]
    # Custom handlers replace the default one.
    assert not StepError.objects.exists()


def test_unknown_task_in_the_worker_fails_the_step_not_the_run(
    start_worker: WorkerFactory,
):
    make_pipeline(
        "ghost", {"s": {"steps": {"g": {"critical": False, "max_attempts": 1}}}}
    )
    run = launching.launch("ghost")
    Job.objects.filter(step_run__run=run).update(task_path="tests.testapp.tasks.gone")
    start_worker("--burst", "--concurrency", "1").wait()
    assert finished(run).status == RunStatus.SUCCEEDED
    assert statuses(run) == {"g": RunStatus.FAILED}
    assert StepError.objects.get().error_type == "geartrain.exceptions.UnknownTask"


def test_runtime_arguments_merge_and_upstream_results(start_worker: WorkerFactory):
    make_pipeline(
        "data",
        {
            "first": {
                "steps": {
                    "two": {"task": "step_number", "kwargs": {"n": 2}},
                    "args": {"task": "step_args", "kwargs": {"a": 1, "b": 2}},
                }
            },
            "sum": {
                "after": ["first"],
                "steps": {"total": {"task": "step_sum_upstream", "kwargs": {}}},
            },
        },
        defaults={"n": 40},
    )
    run = launching.launch("data", {"a": 10, "c": 3, "z": 9})
    start_worker("--burst", "--concurrency", "1").wait()
    assert finished(run).status == RunStatus.SUCCEEDED
    values = {s.step_name: s.return_value for s in run.step_runs.all()}
    # Runtime wins over static and defaults; z is not a parameter of step_args.
    assert values["args"] == {"a": 10, "b": 2, "c": 3}
    assert values["two"] == 40
    assert values["total"] == 40


def test_overlap_and_failed_run_lockout():
    make_pipeline("once", {"s": {"steps": {"x": {}}}})
    first = launching.launch("once")
    with pytest.raises(launching.LaunchRefused) as info:
        launching.launch("once")
    assert str(info.value) == (
        f"Pipeline 'once' is already running (run {first.pk}) and runs one at a "
        f"time. Wait for run {first.pk} to finish, or cancel it."
    )
    assert PipelineRun.objects.count() == 1
    PipelineRun.objects.filter(pk=first.pk).update(status=RunStatus.FAILED)
    with pytest.raises(launching.LaunchRefused) as info:
        launching.launch("once")
    assert str(info.value) == (
        f"The latest run of pipeline 'once' (run {first.pk}) failed. Resume or "
        f"dismiss run {first.pk} first, or set GEARTRAIN['OVERLAP_FAILED'] = True."
    )
    with override_settings(GEARTRAIN={"OVERLAP_FAILED": True}):
        allowed = launching.launch("once")
    engine.cancel(allowed.pk)
    PipelineRun.objects.filter(pk=allowed.pk).delete()
    PipelineRun.objects.filter(pk=first.pk).update(dismissed=True)
    assert launching.launch("once").status == RunStatus.RUNNING


def test_disabled_pipeline_refuses_scheduled_launches_only():
    make_pipeline("off", {"s": {"steps": {"x": {}}}}, enabled=False, overlap="allow")
    with pytest.raises(launching.LaunchRefused, match="is disabled"):
        launching.launch("off", trigger="schedule")
    assert launching.launch("off", trigger="manual").status == RunStatus.RUNNING


def test_launch_inside_a_rolled_back_transaction_leaves_nothing():
    make_pipeline("atomic", {"s": {"steps": {"x": {}}}})

    def launch_then_fail() -> None:
        with transaction.atomic():
            launching.launch("atomic")
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        launch_then_fail()
    assert not PipelineRun.objects.exists()
    assert not Job.objects.exists()


def test_cancel_lets_running_steps_finish_and_starts_nothing_new(
    start_worker: WorkerFactory, marks: Path
):
    steps = {"slow": {"weight": 9, "kwargs": {"key": "slow", "seconds": 1.5}}}
    steps.update({f"q{i}": {"weight": 1} for i in range(3)})
    make_pipeline(
        "cancel", {"s": {"steps": steps}, "t": {"after": ["s"], "steps": {"n": {}}}}
    )
    run = launching.launch("cancel")
    worker = start_worker("--concurrency", "1")
    wait_until(lambda: marked(marks, "started"), 30, "slow step")
    with transaction.atomic():
        engine.cancel(run.pk)
    finished(run)
    assert run.status == RunStatus.CANCELLED
    result = statuses(run)
    assert result["slow"] == RunStatus.SUCCEEDED
    assert {result[f"q{i}"] for i in range(3)} == {RunStatus.CANCELLED}
    assert result["n"] == RunStatus.CANCELLED
    assert marked(marks) == ["slow"]
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0


def test_resume_reruns_only_what_did_not_succeed(
    start_worker: WorkerFactory, marks: Path
):
    pipeline = make_pipeline(
        "resume",
        {
            "s": {
                "steps": {
                    "good": {"weight": 5},
                    "bad": {"max_attempts": 1, "kwargs": {"key": "bad", "fail": True}},
                }
            },
            "t": {"after": ["s"], "steps": {"next": {}}},
        },
    )
    run = launching.launch("resume")
    start_worker("--burst", "--concurrency", "1").wait()
    assert finished(run).status == RunStatus.FAILED
    Step.objects.filter(stage__pipeline=pipeline, name="bad").update(
        kwargs={"key": "bad"}
    )
    again = launching.resume(run.pk)
    # The snapshot still fails: fix the new run's step arguments, as a code fix would.
    again.step_runs.filter(step_name="bad").update(kwargs={"key": "bad"})
    Job.objects.filter(step_run__run=again, step_run__step_name="bad").update(
        kwargs={"key": "bad"}
    )
    start_worker("--burst", "--concurrency", "1").wait()
    assert finished(again).status == RunStatus.SUCCEEDED
    assert again.resumed_from_id == run.pk
    assert marked(marks) == ["good", "bad", "next"]
    good = again.step_runs.get(step_name="good")
    assert good.return_value == "good"


def test_sigkill_mid_step_is_retried_and_the_run_finishes(
    start_worker: WorkerFactory, marks: Path
):
    make_pipeline(
        "crash", {"s": {"steps": {"slow": {"kwargs": {"key": "slow", "seconds": 2}}}}}
    )
    run = launching.launch("crash")
    worker = start_worker("--concurrency", "1")
    wait_until(lambda: marked(marks, "started"), 30, "step to start")
    worker.kill_group()
    worker.wait()
    start_worker("--concurrency", "1")
    assert finished(run, timeout=90).status == RunStatus.SUCCEEDED
    step = run.step_runs.get()
    assert step.attempts == 2


def test_editing_the_pipeline_mid_run_changes_nothing_for_the_run(
    start_worker: WorkerFactory, marks: Path
):
    pipeline = make_pipeline(
        "snap",
        {"s": {"steps": {"one": {}}}, "t": {"after": ["s"], "steps": {"two": {}}}},
    )
    run = launching.launch("snap")
    later = pipeline.stages.get(name="t")
    Step.objects.create(
        stage=later,
        name="added",
        task_path="tests.testapp.tasks.step_record",
        kwargs={"key": "added"},
    )
    Step.objects.filter(name="two").update(kwargs={"key": "changed"})
    start_worker("--burst", "--concurrency", "1").wait()
    assert finished(run).status == RunStatus.SUCCEEDED
    assert marked(marks) == ["one", "two"]


def test_weights_are_learnt_after_a_run(start_worker: WorkerFactory):
    make_pipeline(
        "learn",
        {
            "s": {
                "steps": {
                    "w": {"kwargs": {"key": "w", "seconds": 0.2}},
                    "off": {"enabled": False, "weight": 7},
                }
            }
        },
    )
    run = launching.launch("learn")
    start_worker("--burst", "--concurrency", "1").wait()
    assert finished(run).status == RunStatus.SUCCEEDED
    weights = dict(Step.objects.values_list("name", "weight"))
    assert 0.2 <= float(weights["w"]) < 2
    assert float(weights["off"]) == 7
