"""Advancing pipeline runs. Every function here runs inside the caller's transaction.

Locking rule: whoever advances a run first locks the run's row (``SELECT … FOR
UPDATE``; SQLite's single writer serialises instead). All finishers of a run therefore
take turns, so a stage is completed once and each dependent stage's
``prerequisites_left`` counter reaches zero exactly once, however many steps finish at
the same instant. The (run, stage) unique constraint backs this up in the schema.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from geartrain import jobs as job_rows
from geartrain.conf import get_settings
from geartrain.models import Job, JobStatus, PipelineRun, RunStatus, StageRun, StepRun
from geartrain.models.job import WAITING
from geartrain.models.run import RUN_FINAL
from geartrain.pipelines import weights
from geartrain.registry import registry

logger = logging.getLogger(__name__)

JOB_TO_STEP = {
    JobStatus.SUCCEEDED: RunStatus.SUCCEEDED,
    JobStatus.FAILED: RunStatus.FAILED,
    JobStatus.CANCELLED: RunStatus.CANCELLED,
}


def _db() -> str:
    return get_settings().DATABASE


def lock_run(run_id: int) -> PipelineRun:
    """The run's row, locked until the transaction ends.

    The snapshot and arguments are not loaded: the engine never needs them, and the
    snapshot of a large pipeline is big enough to matter on every step.
    """
    return (
        PipelineRun.objects.using(_db())
        .select_for_update()
        .defer("snapshot", "arguments")
        .get(pk=run_id)
    )


def start(run: PipelineRun) -> None:
    """Mark ``run`` running and start every stage without prerequisites."""
    run.status = RunStatus.RUNNING
    run.started_at = timezone.now()
    run.save(update_fields=["status", "started_at"])
    for stage_run in run.stage_runs.filter(
        status=RunStatus.PENDING, prerequisites_left=0
    ).order_by("id"):
        start_stage(run, stage_run)
    maybe_finish(run)


def start_stage(run: PipelineRun, stage_run: StageRun) -> None:
    """Enqueue a stage's pending steps, heaviest first; an empty stage completes now."""
    now = timezone.now()
    steps = list(
        stage_run.step_runs.filter(status=RunStatus.PENDING).order_by(
            "-weight", "step_name"
        )
    )
    stage_run.status = RunStatus.RUNNING
    stage_run.started_at = now
    stage_run.steps_left = len(steps)
    stage_run.save(update_fields=["status", "started_at", "steps_left"])
    if steps:
        _enqueue_steps(run, steps)
    else:
        complete_stage(run, stage_run)


def _enqueue_steps(run: PipelineRun, steps: list[StepRun]) -> None:
    new_jobs = []
    for step in steps:
        task = registry.get(step.task_path).using(
            queue_name=step.queue, priority=step.priority
        )
        job = job_rows.build_job(task, (), step.kwargs, backend=task.backend)
        job.step_run = step
        job.max_attempts = step.max_attempts
        job.timeout = step.timeout
        new_jobs.append(job)
    # Heaviest first: ids (and so the claim order) follow the list order.
    Job.objects.using(_db()).bulk_create(new_jobs)


def step_started(job: Job) -> bool:
    """Mark the step run of ``job`` running; False if the step may no longer run.

    A worker can hold a claimed job whose step was skipped or cancelled meanwhile (a
    critical sibling failed, or the run was cancelled): that job must not run.
    """
    if job.step_run_id is None:
        return True
    steps = StepRun.objects.using(_db()).filter(pk=job.step_run_id)
    # The common case in one statement: a pending step without overlap rules.
    if steps.filter(status=RunStatus.PENDING, prevent_overlap=False).update(
        status=RunStatus.RUNNING, started_at=timezone.now()
    ):
        return True
    step = steps.only(
        "status", "prevent_overlap", "step_name", "run_id", "stage_run_id"
    )
    found = step.first()
    if found is None or found.status == RunStatus.RUNNING:
        return found is not None  # a retry of a running step runs again
    if found.status != RunStatus.PENDING:
        return False  # skipped or cancelled after the claim
    if _running_elsewhere(found):
        return not _skip_overlapping(found)
    return bool(
        steps.filter(status=RunStatus.PENDING).update(
            status=RunStatus.RUNNING, started_at=timezone.now()
        )
    )


def _running_elsewhere(step: StepRun) -> bool:
    """Whether the same step of the same pipeline runs in another run now."""
    run = PipelineRun.objects.using(_db()).only("pipeline_id").get(pk=step.run_id)
    if run.pipeline_id is None:
        return False
    stage_name = (
        StageRun.objects.using(_db())
        .values_list("stage_name", flat=True)
        .get(pk=step.stage_run_id)
    )
    return (
        StepRun.objects.using(_db())
        .filter(
            run__pipeline_id=run.pipeline_id,
            stage_run__stage_name=stage_name,
            step_name=step.step_name,
            status=RunStatus.RUNNING,
        )
        .exclude(run_id=step.run_id)
        .exists()
    )


def _skip_overlapping(step: StepRun) -> bool:
    """Record ``step`` as skipped (its twin is running) and advance its stage."""
    with transaction.atomic(using=_db()):
        run = lock_run(step.run_id)
        fresh = StepRun.objects.using(_db()).get(pk=step.pk)
        if fresh.status != RunStatus.PENDING:
            return False
        fresh.status = RunStatus.SKIPPED
        fresh.finished_at = timezone.now()
        fresh.save(update_fields=["status", "finished_at"])
        logger.info(
            "Step %s of run %s skipped: it is still running in another run",
            fresh.step_name,
            run.pk,
            extra={"action": "step_skipped", "reason": "overlap"},
        )
        stage_run = StageRun.objects.using(_db()).get(pk=fresh.stage_run_id)
        _count_finished_step(run, stage_run, fresh)
    return True


def step_finished(job: Job) -> None:
    """Record the final outcome of a step's job and advance the run."""
    if job.step_run_id is None:
        return
    steps = StepRun.objects.using(_db())
    run = lock_run(steps.values_list("run_id", flat=True).get(pk=job.step_run_id))
    step = steps.only("status", "stage_run_id", "critical", "started_at").get(
        pk=job.step_run_id
    )
    if step.status in RUN_FINAL:
        return
    changes = {
        "status": JOB_TO_STEP.get(JobStatus(job.status), RunStatus.FAILED),
        "finished_at": job.finished_at or timezone.now(),
        "return_value": job.return_value if job.status == JobStatus.SUCCEEDED else None,
        "attempts": job.attempts,
    }
    changes["started_at"] = step.started_at or job.started_at or changes["finished_at"]
    steps.filter(pk=step.pk).update(**changes)
    for name, value in changes.items():
        setattr(step, name, value)
    stage_run = StageRun.objects.using(_db()).get(pk=step.stage_run_id)
    _count_finished_step(run, stage_run, step)


def _count_finished_step(run: PipelineRun, stage_run: StageRun, step: StepRun) -> None:
    stage_run.steps_left = max(0, stage_run.steps_left - 1)
    update = ["steps_left"]
    if step.status == RunStatus.FAILED:
        stage_run.has_failures = True
        run.has_failures = True
        run.save(update_fields=["has_failures"])
        update.append("has_failures")
        if step.critical:
            stage_run.status = RunStatus.FAILED
            update.append("status")
            stage_run.steps_left -= skip_waiting_steps(stage_run, RunStatus.SKIPPED)
    stage_run.save(update_fields=update)
    if stage_run.steps_left <= 0:
        complete_stage(run, stage_run)


def skip_waiting_steps(stage_run: StageRun, status: str) -> int:
    """Cancel the not-yet-started jobs of a stage; their step runs get ``status``."""
    now = timezone.now()
    waiting = StepRun.objects.using(_db()).filter(
        stage_run=stage_run, status=RunStatus.PENDING
    )
    ids = list(waiting.values_list("pk", flat=True))
    if not ids:
        return 0
    Job.objects.using(_db()).filter(step_run_id__in=ids, status__in=WAITING).update(
        status=JobStatus.CANCELLED, finished_at=now, unique_key=None
    )
    return (
        StepRun.objects.using(_db())
        .filter(pk__in=ids)
        .update(status=status, finished_at=now)
    )


def complete_stage(run: PipelineRun, stage_run: StageRun) -> None:
    """Close a stage whose last step ended; start dependents whose turn it is."""
    failed = stage_run.status == RunStatus.FAILED
    if run.cancel_requested:
        stage_run.status = RunStatus.CANCELLED
    elif not failed:
        stage_run.status = RunStatus.SUCCEEDED
    stage_run.finished_at = timezone.now()
    stage_run.steps_left = 0
    stage_run.save(update_fields=["status", "finished_at", "steps_left"])
    if stage_run.status == RunStatus.SUCCEEDED:
        _release_dependents(run, stage_run)
    maybe_finish(run)


def _release_dependents(run: PipelineRun, stage_run: StageRun) -> None:
    dependents = [
        sr
        for sr in run.stage_runs.filter(status=RunStatus.PENDING).order_by("id")
        if stage_run.stage_name in sr.depends_on
    ]
    for dependent in dependents:
        dependent.prerequisites_left -= 1
        dependent.save(update_fields=["prerequisites_left"])
        if dependent.prerequisites_left == 0 and not _stopping(run):
            start_stage(run, dependent)


def _stopping(run: PipelineRun) -> bool:
    if run.cancel_requested:
        return True
    return run.stage_runs.filter(status=RunStatus.FAILED).exists()


def maybe_finish(run: PipelineRun) -> None:
    """Give ``run`` its final status once nothing runs and nothing more can start."""
    if run.status in RUN_FINAL:
        return
    if run.stage_runs.filter(status=RunStatus.RUNNING).exists():
        return
    stopping = _stopping(run)
    if not stopping and run.stage_runs.filter(status=RunStatus.PENDING).exists():
        return
    now = timezone.now()
    leftover = RunStatus.CANCELLED if run.cancel_requested else RunStatus.SKIPPED
    run.stage_runs.filter(status=RunStatus.PENDING).update(
        status=leftover, finished_at=now
    )
    StepRun.objects.using(_db()).filter(run=run, status=RunStatus.PENDING).update(
        status=leftover, finished_at=now
    )
    if run.cancel_requested:
        run.status = RunStatus.CANCELLED
    elif run.stage_runs.filter(status=RunStatus.FAILED).exists():
        run.status = RunStatus.FAILED
    else:
        run.status = RunStatus.SUCCEEDED
    run.finished_at = now
    run.save(update_fields=["status", "finished_at"])
    # After the commit, outside the run's lock; it never holds up a step.
    transaction.on_commit(lambda: weights.recompute(run), using=_db())
    logger.info(
        "Pipeline run %s of %s finished status=%s",
        run.pk,
        run.pipeline_name,
        run.outcome,
        extra={"action": "run_finished"},
    )


def cancel(run_id: int) -> PipelineRun:
    """Cancel a run: waiting steps are cancelled, running ones finish, no new ones.

    Opens its own transaction (or joins the caller's).
    """
    with transaction.atomic(using=_db()):
        run = lock_run(run_id)
        if run.status in RUN_FINAL:
            return run
        run.cancel_requested = True
        run.save(update_fields=["cancel_requested"])
        for stage_run in run.stage_runs.filter(status=RunStatus.RUNNING):
            stage_run.steps_left -= skip_waiting_steps(stage_run, RunStatus.CANCELLED)
            stage_run.save(update_fields=["steps_left"])
            if stage_run.steps_left <= 0:
                complete_stage(run, stage_run)
        maybe_finish(run)
    logger.info("Pipeline run %s cancel requested", run_id, extra={"action": "cancel"})
    return run


def results_of(run_id: int, before_stage: str | None = None) -> dict[str, Any]:
    """Return values of succeeded steps of ``run_id``: ``{stage: {step: value}}``."""
    rows = StepRun.objects.using(_db()).filter(
        run_id=run_id, status=RunStatus.SUCCEEDED
    )
    if before_stage is not None:
        rows = rows.exclude(stage_run__stage_name=before_stage)
    found: dict[str, Any] = {}
    for stage_name, step_name, value in rows.values_list(
        "stage_run__stage_name", "step_name", "return_value"
    ):
        found.setdefault(stage_name, {})[step_name] = value
    return found
