"""Engine edge cases that need precise interleaving, driven in-process."""

from __future__ import annotations

import signal
import threading

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from geartrain.conf import get_settings
from geartrain.models import Job, JobStatus, PipelineRun, RunStatus, Step
from geartrain.pipelines import bulk, engine, hooks, launching, starts
from geartrain.pipelines.spec import InvalidPipeline
from geartrain.queue import get_strategy
from geartrain.worker.child import Child
from tests.acceptance.pipelines import make_pipeline
from tests.testapp.tasks import add

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def child():
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    made = Child(
        worker_id="host-1-abc", queues=["default"], slot=[0.0, 0.0], conf=get_settings()
    )
    yield made
    made.prefetch.close()
    signal.signal(signal.SIGTERM, previous[0])
    signal.signal(signal.SIGINT, previous[1])


def test_a_claimed_job_of_a_cancelled_step_does_not_run(child, tmp_path, monkeypatch):
    monkeypatch.setenv("GEARTRAIN_MARKS", str(tmp_path))
    make_pipeline("held", {"s": {"steps": {"a": {}, "b": {}}}})
    run = launching.launch("held")
    claimed = get_strategy("default").claim(["default"], 2, child.owner, 30)
    assert len(claimed) == 2
    engine.cancel(run.pk)  # the jobs are claimed (running), so they are not cancelled
    for job in claimed:
        child._run_one(job)
    child._flush()

    assert not (tmp_path / "record").exists()
    assert set(Job.objects.values_list("status", flat=True)) == {JobStatus.CANCELLED}
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert {s.status for s in run.step_runs.all()} == {RunStatus.CANCELLED}


def test_step_started_allows_a_retry_of_a_running_step():
    make_pipeline("again", {"s": {"steps": {"a": {}}}})
    run = launching.launch("again")
    job = Job.objects.get(step_run__run=run)
    assert starts.step_started(job) is True
    assert starts.step_started(job) is True  # second attempt of the same step


def test_resume_refuses_a_snapshot_whose_task_is_gone():
    pipeline = make_pipeline(
        "gone", {"s": {"steps": {"a": {"kwargs": {"key": "a", "fail": True}}}}}
    )
    run = launching.launch("gone")
    snapshot = dict(run.snapshot)
    snapshot["stages"][0]["steps"][0]["task"] = "tests.testapp.tasks.removed"
    run.snapshot = snapshot
    run.status = RunStatus.FAILED
    run.save()
    with pytest.raises(InvalidPipeline) as info:
        launching.resume(run.pk)
    assert (
        "Step 'a' uses task 'tests.testapp.tasks.removed', which is not registered."
        in str(info.value)
    )
    assert pipeline.runs.count() == 1


def test_launch_refuses_a_step_queue_that_is_not_configured():
    pipeline = make_pipeline("lanes", {"s": {"steps": {"a": {}}}})
    Step.objects.filter(stage__pipeline=pipeline).update(queue="nowhere")
    with pytest.raises(InvalidPipeline, match="nowhere"):
        launching.launch("lanes")
    assert not pipeline.runs.exists()


def test_prevent_overlap_skips_a_step_running_in_another_run(
    child, tmp_path, monkeypatch
):
    monkeypatch.setenv("GEARTRAIN_MARKS", str(tmp_path))
    make_pipeline(
        "twins",
        {
            "s": {"steps": {"a": {"prevent_overlap": True}}},
            "t": {"after": ["s"], "steps": {"z": {}}},
        },
        overlap="allow",
    )
    first = launching.launch("twins")
    second = launching.launch("twins")
    claimed = get_strategy("default").claim(["default"], 2, child.owner, 30)
    by_run = {job.step_run.run_id: job for job in claimed}
    first_job, second_job = by_run[first.pk], by_run[second.pk]
    assert starts.step_started(first_job) is True  # now running in the first run
    child._run_one(second_job)
    child._flush()

    assert not (tmp_path / "record").exists()
    skipped = second.step_runs.get(step_name="a")
    assert skipped.status == RunStatus.SKIPPED
    # The stage still completes and the next one starts.
    assert second.stage_runs.get(stage_name="s").status == RunStatus.SUCCEEDED
    assert second.stage_runs.get(stage_name="t").status == RunStatus.RUNNING
    assert Job.objects.get(pk=second_job.pk).status == JobStatus.CANCELLED


def drain(child) -> None:
    """Run every ready job in-process with the child's own loop pieces."""
    strategy = get_strategy("default")
    while claimed := strategy.claim(["default", "emails"], 10, child.owner, 30):
        for job in claimed:
            child._run_one(job)
        child._flush()


def test_runtime_arguments_are_stored_and_steps_go_to_their_queue(child):
    make_pipeline(
        "routes",
        {"s": {"steps": {"mail": {"queue": "emails"}, "plain": {}}}},
    )
    run = launching.launch("routes", {"a": 10, "user_id": 1})
    assert run.arguments == {"a": 10, "user_id": 1}
    queues = dict(Job.objects.values_list("step_run__step_name", "queue"))
    assert queues == {"mail": "emails", "plain": "default"}


def test_finish_time_is_set_once(child, tmp_path, monkeypatch):
    monkeypatch.setenv("GEARTRAIN_MARKS", str(tmp_path))
    make_pipeline("once", {"s": {"steps": {"a": {}}}})
    run = launching.launch("once")
    drain(child)
    run.refresh_from_db()
    finished = run.finished_at
    assert run.status == RunStatus.SUCCEEDED
    engine.maybe_finish(run)
    engine.cancel(run.pk)
    run.refresh_from_db()
    assert (run.status, run.finished_at) == (RunStatus.SUCCEEDED, finished)


def test_weights_stay_when_auto_weight_is_off(child, tmp_path, monkeypatch, settings):
    monkeypatch.setenv("GEARTRAIN_MARKS", str(tmp_path))
    settings.GEARTRAIN = {**settings.GEARTRAIN, "AUTO_WEIGHT": False}
    make_pipeline("fixed", {"s": {"steps": {"a": {"weight": 4}}}})
    run = launching.launch("fixed")
    drain(child)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert float(Step.objects.get(name="a").weight) == 4.0


def test_a_batch_marks_its_steps_running_and_advances_its_stage_once(
    child, tmp_path, monkeypatch
):
    monkeypatch.setenv("GEARTRAIN_MARKS", str(tmp_path))
    make_pipeline(
        "batch",
        {
            "s": {"steps": {"a": {}, "b": {}, "c": {}}},
            "t": {"after": ["s"], "steps": {"z": {}}},
        },
    )
    run = launching.launch("batch")
    claimed = get_strategy("default").claim(["default"], 3, child.owner, 30)
    assert starts.steps_started(claimed) == {j.step_run_id for j in claimed}
    assert set(
        run.step_runs.filter(stage_run__stage_name="s").values_list("status", flat=True)
    ) == {RunStatus.RUNNING}
    child._run_batch(claimed)

    stage = run.stage_runs.get(stage_name="s")
    assert (stage.status, stage.steps_left) == (RunStatus.SUCCEEDED, 0)
    for step in stage.step_runs.all():
        assert step.status == RunStatus.SUCCEEDED
        assert step.started_at is not None
        assert step.return_value == step.step_name
    nxt = run.stage_runs.get(stage_name="t")
    assert (nxt.status, nxt.steps_left) == (RunStatus.RUNNING, 1)
    job = Job.objects.get(step_run__stage_run=nxt)
    assert (job.kwargs, job.args, job.backend) == ({"key": "z"}, [], "default")
    # The transaction that started stage t claimed its job for the child and marked
    # its step running: the child's next batch, run without a claim of its own.
    assert (job.status, job.lease_owner) == (JobStatus.RUNNING, child.owner)
    assert (job.attempt_log, job.attempts) == ([], 1)
    assert [j.pk for j in child.ahead] == [job.pk]
    assert child.ahead_steps == {job.step_run_id}
    assert nxt.step_runs.get().status == RunStatus.RUNNING


def _two_stages(name: str) -> PipelineRun:
    make_pipeline(
        name,
        {"s": {"steps": {"a": {}}}, "t": {"after": ["s"], "steps": {"y": {}, "z": {}}}},
    )
    return launching.launch(name)


def test_jobs_claimed_with_a_stage_start_are_the_next_batch(child):
    run = _two_stages("ahead")
    child.batch = 8  # the size of its next claim
    child._run_batch(get_strategy("default").claim(["default"], 1, child.owner, 30))
    assert len(child.ahead) == 2
    assert child._cycle() == 2
    assert child.ahead == []
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert set(Job.objects.values_list("attempts", flat=True)) == {1}


def test_jobs_claimed_with_a_stage_start_go_back_when_the_child_stops(child):
    run = _two_stages("back-ahead")
    child.batch = 8  # the size of its next claim
    child._run_batch(get_strategy("default").claim(["default"], 1, child.owner, 30))
    assert len(child.ahead) == 2
    child._give_back_ahead()
    assert child.ahead == []
    steps = run.step_runs.filter(stage_run__stage_name="t")
    assert set(steps.values_list("status", flat=True)) == {RunStatus.PENDING}
    jobs = Job.objects.filter(step_run__in=steps)
    assert set(jobs.values_list("status", "lease_owner", "attempts")) == {
        (JobStatus.READY, None, 0)
    }


def test_jobs_given_back_put_their_started_steps_back_to_pending(child):
    make_pipeline("back", {"s": {"steps": {"a": {}, "b": {}}}})
    run = launching.launch("back")
    strategy = get_strategy("default")
    claimed = strategy.claim(["default"], 2, child.owner, 30)
    starts.steps_started(claimed)
    assert strategy.release(child.owner, [j.pk for j in claimed]) == 2

    for step in run.step_runs.all():
        assert (step.status, step.started_at) == (RunStatus.PENDING, None)
    assert set(Job.objects.values_list("status", flat=True)) == {JobStatus.READY}
    # Cancelling now cancels them: they never started.
    engine.cancel(run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert set(Job.objects.values_list("status", flat=True)) == {JobStatus.CANCELLED}


def test_a_unique_task_step_gets_its_job_through_the_orm():
    make_pipeline(
        "uniq",
        {"s": {"steps": {"r": {"task": "unique_report", "kwargs": {"day": "mon"}}}}},
    )
    run = launching.launch("uniq")
    job = Job.objects.get(step_run__run=run)
    assert job.unique_key is not None
    assert job.kwargs == {"day": "mon"}
    assert run.stage_runs.get().steps_left == 1


@pytest.mark.skipif(
    connection.vendor == "sqlite", reason="SQLite has no row locks to be busy"
)
def test_a_batch_whose_run_is_locked_is_written_again_with_the_run_locked_first(
    child, tmp_path, monkeypatch
):
    monkeypatch.setenv("GEARTRAIN_MARKS", str(tmp_path))
    make_pipeline(
        "busy",
        {"s": {"steps": {"a": {}}}, "t": {"after": ["s"], "steps": {"z": {}}}},
    )
    run = launching.launch("busy")
    [job] = get_strategy("default").claim(["default"], 1, child.owner, 30)
    job.status, job.finished_at = JobStatus.SUCCEEDED, timezone.now()
    locked, release = threading.Event(), threading.Event()

    def hold_the_run() -> None:
        try:
            with transaction.atomic():
                engine.lock_run(run.pk)
                locked.set()
                release.wait(30)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_the_run)
    holder.start()
    assert locked.wait(30)
    try:
        # Completing the stage needs the run: NOWAIT gives up, and everything rolls
        # back, the step's outcome included.
        with pytest.raises(engine.RunBusy), transaction.atomic():
            engine.steps_finished([bulk.outcome_of(job)], runs_first=False)
        assert run.step_runs.get(step_name="a").status == RunStatus.PENDING
    finally:
        release.set()
        holder.join(30)
    fields = {
        "status": JobStatus.SUCCEEDED,
        "finished_at": job.finished_at,
        "return_value": "a",
        "attempt_log": [],
    }
    assert (
        hooks.finish_many(get_strategy("default"), child.owner, [(job, fields)]) == []
    )
    assert run.stage_runs.get(stage_name="s").status == RunStatus.SUCCEEDED
    assert run.stage_runs.get(stage_name="t").status == RunStatus.RUNNING


def test_a_worker_claim_marks_its_steps_running_on_postgresql(child):
    make_pipeline(
        "claimed", {"s": {"steps": {"a": {}, "b": {}, "c": {"prevent_overlap": True}}}}
    )
    run = launching.launch("claimed")
    claimed = get_strategy("default").claim_batch(["default"], 3, child.owner, 30)

    assert len(claimed.jobs) == 3
    statuses = dict(run.step_runs.values_list("step_name", "status"))
    if connection.vendor == "postgresql":
        # One statement: a and b are running; c has overlap rules, checked alone.
        marked = set(run.step_runs.exclude(step_name="c").values_list("pk", flat=True))
        assert claimed.started_steps == marked
        assert statuses == {"a": "running", "b": "running", "c": "pending"}
    else:
        # Marked by the child after the claim (starts.steps_started), so that
        # SQLite's write lock is not held while the claimed rows are read.
        assert claimed.started_steps is None
        assert statuses == {"a": "pending", "b": "pending", "c": "pending"}
        assert starts.steps_started(claimed.jobs) == {
            j.step_run_id
            for j in claimed.jobs
            if j.step_run_id != run.step_runs.get(step_name="c").pk
        }


def test_a_worker_claim_of_plain_jobs_starts_no_step(child):
    add.enqueue(1, 2)
    claimed = get_strategy("default").claim_batch(["default"], 5, child.owner, 30)

    assert [j.task_path for j in claimed.jobs] == [add.module_path]
    assert claimed.started_steps in (set(), None)  # None: nothing was marked
