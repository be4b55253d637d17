"""Starting steps: a claimed job's step run is marked running before its task runs.

A batch's step runs are marked in one statement (:func:`steps_started`); a job left
out of it (a retry, a step with ``prevent_overlap``, a step skipped or cancelled since
the claim) goes through :func:`step_started` on its own before it runs.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from geartrain.conf import get_settings
from geartrain.models import Job, RunStatus, StepRun
from geartrain.pipelines import bulk, overlap
from geartrain.pipelines.engine import complete_stage, lock_run
from geartrain.queue import steps

logger = logging.getLogger(__name__)


def _db() -> str:
    return get_settings().DATABASE


def steps_started(jobs: list[Job]) -> set[int]:
    """Mark the step runs of a claimed batch running at once; return their ids.

    Only pending steps without overlap rules are marked: a job whose step run is not
    in the result goes through :func:`step_started` before it runs.
    """
    return steps.start_steps(
        _db(),
        [j.step_run_id for j in jobs if j.step_run_id is not None],
        timezone.now(),
    )


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
    if overlap.running_elsewhere(found):
        return not _skip_overlapping(found)
    return bool(
        steps.filter(status=RunStatus.PENDING).update(
            status=RunStatus.RUNNING, started_at=timezone.now()
        )
    )


def _skip_overlapping(step: StepRun) -> bool:
    """Record ``step`` as skipped (its twin is running) and advance its stage."""
    with transaction.atomic(using=_db()):
        run = lock_run(step.run_id)
        skipped = (
            StepRun.objects.using(_db())
            .filter(pk=step.pk, status=RunStatus.PENDING)
            .update(status=RunStatus.SKIPPED, finished_at=timezone.now())
        )
        if not skipped:
            return False
        logger.info(
            "Step %s of run %s skipped: it is still running in another run",
            step.step_name,
            run.pk,
            extra={"action": "step_skipped", "reason": "overlap"},
        )
        stage_run = bulk.count_down(step.stage_run_id, 1)
        if stage_run.steps_left <= 0:
            complete_stage(run, stage_run)
    return True
