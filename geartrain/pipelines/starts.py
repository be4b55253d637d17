"""Starting steps: a claimed job's step run is marked running before its task runs.

A batch's step runs are marked in one statement (:func:`steps_started`); a job left
out of it (a retry, a step with ``prevent_overlap``, a step skipped or cancelled since
the claim) goes through :func:`step_started` on its own before it runs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from django.db import connections, transaction
from django.utils import timezone

from geartrain.conf import get_settings
from geartrain.models import Job, RunStatus, StepRun
from geartrain.pipelines import bulk, overlap
from geartrain.pipelines.engine import complete_stage, lock_run

logger = logging.getLogger(__name__)


def _db() -> str:
    return get_settings().DATABASE


def steps_started(jobs: list[Job]) -> set[int]:
    """Mark the step runs of a claimed batch running at once; return their ids.

    Only pending steps without overlap rules are marked: a job whose step run is not
    in the result goes through :func:`step_started` before it runs. (On PostgreSQL
    the worker's claim has done this in its own statement: ``claim_batch``.)
    """
    return start_steps(
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


def start_steps(step_run_ids: Sequence[int], now: datetime) -> set[int]:
    """Mark pending step runs running; return the ids marked.

    Steps with ``prevent_overlap`` are left alone (they need their own check), and so
    are steps no longer pending: the caller checks those one by one.
    """
    ids = sorted(set(step_run_ids))
    if not ids:
        return set()
    conn = connections[_db()]
    table = StepRun._meta.db_table
    marks = ", ".join(["%s"] * len(ids))
    sql = (
        f"UPDATE {table} SET status = %s, started_at = %s "
        f"WHERE id IN ({marks}) AND status = %s AND prevent_overlap = %s"
    )
    params = [
        RunStatus.RUNNING,
        conn.ops.adapt_datetimefield_value(now),
        *ids,
        RunStatus.PENDING,
        False,
    ]
    if conn.vendor == "postgresql" and not conn.in_atomic_block:
        # Like the claim, this commit need not wait for the disk: a start lost in a
        # crash leaves the step pending, and its outcome fills started_at from the
        # job. set_config(..., true) lasts for this statement's transaction only (so
        # never inside a caller's: a worker's outcomes must commit durably).
        sql += " AND set_config('synchronous_commit', 'off', true) IS NOT NULL"
    with conn.cursor() as cursor:
        if bulk.has_returning():
            cursor.execute(f"{sql} RETURNING id", params)
            return {int(row[0]) for row in cursor.fetchall()}
        cursor.execute(sql, params)
        if not cursor.rowcount:
            return set()
    # Steps already running (a retry) are in too: step_started() lets them run.
    started = StepRun.objects.using(_db()).filter(pk__in=ids, status=RunStatus.RUNNING)
    return set(started.values_list("pk", flat=True))
