"""Advancing pipeline runs. Every function here runs inside the caller's transaction.

Locking rules (SQLite's single writer serialises everything instead):

* A step's outcome only changes its step run (guarded by the status it leaves) and
  subtracts from its stage run's ``steps_left`` with an atomic ``steps_left -
  n``, which locks that stage run's row. The transaction that sees the counter reach
  zero is the one stage finisher.
* Whoever changes a stage's status, a run's status or ``has_failures``, or starts a
  stage, holds the run's row lock (``SELECT … FOR UPDATE``): stage completions of a
  run take turns, so each dependent stage's ``prerequisites_left`` reaches zero once
  and the run is finished once. The (run, stage) unique constraint backs this up.
* Lock order: a worker's batch of outcomes takes stage rows (in id order), then the
  run's row with ``NOWAIT``: if another transaction holds it (``cancel``, a sibling
  stage's finisher), the batch rolls back and is written again with its runs locked
  first (:class:`RunBusy`). Everyone else locks the run first. So no transaction ever
  waits for a run's row while holding a stage row another one wants.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.db import DatabaseError, connections, transaction
from django.utils import timezone

from geartrain import jobs as job_rows
from geartrain.conf import get_settings
from geartrain.models import Job, JobStatus, PipelineRun, RunStatus, StageRun, StepRun
from geartrain.models.job import WAITING
from geartrain.models.run import RUN_FINAL
from geartrain.pipelines import bulk, stage_jobs, weights
from geartrain.pipelines.bulk import FinishedStep, StepOutcome, outcome_of
from geartrain.registry import registry

logger = logging.getLogger(__name__)

STAGE_RUNS = StageRun._meta.db_table
Named = tuple[int, str]  # a stage run's id and stage name


def _db() -> str:
    return get_settings().DATABASE


class RunBusy(Exception):
    """A run's row is locked by another transaction: write again, runs locked first."""


def _runs() -> Any:
    # The snapshot and arguments are never needed here, and the snapshot of a large
    # pipeline is big enough to matter.
    return PipelineRun.objects.using(_db()).defer("snapshot", "arguments")


def lock_run(run_id: int, *, nowait: bool = False) -> PipelineRun:
    """The run's row, locked until the transaction ends.

    With ``nowait``, raises :class:`RunBusy` instead of waiting for another holder.
    """
    if not nowait:
        return _runs().select_for_update().get(pk=run_id)  # type: ignore[no-any-return]
    try:
        return _runs().select_for_update(nowait=True).get(pk=run_id)  # type: ignore[no-any-return]
    except DatabaseError as error:
        raise RunBusy(f"run {run_id} is locked by another transaction") from error


def lock_runs_of(step_run_ids: list[int]) -> dict[int, PipelineRun]:
    """Lock the runs of these step runs, in id order."""
    run_ids = set(
        StepRun.objects.using(_db())
        .filter(pk__in=step_run_ids)
        .values_list("run_id", flat=True)
    )
    locked = _runs().select_for_update().filter(pk__in=run_ids).order_by("pk")
    return {run.pk: run for run in locked}


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
    count = stage_jobs.start_stage_jobs(stage_run.pk, now)
    stage_run.status = RunStatus.RUNNING
    stage_run.started_at = now
    if count is None:
        steps = list(
            stage_run.step_runs.filter(status=RunStatus.PENDING).order_by(
                "-weight", "step_name"
            )
        )
        if steps:
            _enqueue_steps(run, steps)
        count = len(steps)
        # The one absolute write of the counter: the stage was pending, so no
        # finisher can be counting it down.
        stage_run.steps_left = count
        stage_run.prerequisites_left = 0
        fields = ["status", "started_at", "steps_left", "prerequisites_left"]
        stage_run.save(update_fields=fields)
    stage_run.steps_left = count
    if not count:
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


def step_finished(job: Job) -> None:
    """Record the final outcome of a step's job and advance the run."""
    if job.step_run_id is not None:
        steps_finished([outcome_of(job)])


def steps_finished(outcomes: list[StepOutcome], *, runs_first: bool = True) -> bool:
    """Record final outcomes of steps and advance their stages and runs.

    ``runs_first=False`` (a worker's batch in a transaction of its own) locks a run
    only where a stage ends or a step failed, with ``NOWAIT``; it raises
    :class:`RunBusy` when that run is locked, and the caller writes everything again
    with ``runs_first=True``. Returns whether a stage started (its jobs are ready in
    this transaction).
    """
    if not outcomes:
        return False
    started = False
    locked: dict[int, PipelineRun] = {}
    if runs_first:
        locked = lock_runs_of([o.step_run_id for o in outcomes])
    by_stage: dict[int, list[FinishedStep]] = {}
    try:
        written = bulk.finish_steps(outcomes)
    except DatabaseError as error:
        if runs_first or not _lock_not_available(error):
            raise
        raise RunBusy("a run of the batch is locked by another transaction") from error
    counted = written.counted
    if written.run is not None:
        locked.setdefault(written.run.pk, written.run)
    for row in written.steps:
        by_stage.setdefault(row.stage_run_id, []).append(row)
    for stage_run_id in sorted(by_stage):
        rows = by_stage[stage_run_id]
        failed = [row for row in rows if row.status == RunStatus.FAILED]
        if failed:
            run = _held(locked, rows[0].run_id)
            critical = any(row.critical for row in failed)
            started |= _count_failures(run, stage_run_id, len(rows), critical=critical)
        else:
            if counted is not None and counted.pk == stage_run_id:
                stage_run = counted  # the same statement counted it down
            else:
                stage_run = bulk.count_down(stage_run_id, len(rows))
            if stage_run.steps_left <= 0:
                started |= complete_stage(_held(locked, stage_run.run_id), stage_run)
    return started


def _lock_not_available(error: DatabaseError) -> bool:
    """Whether ``error`` is PostgreSQL's "lock not available" (``NOWAIT``, 55P03)."""
    return getattr(error.__cause__, "sqlstate", None) == "55P03"


def _held(locked: dict[int, PipelineRun], run_id: int) -> PipelineRun:
    if run_id not in locked:
        locked[run_id] = lock_run(run_id, nowait=True)
    return locked[run_id]


def _count_failures(
    run: PipelineRun, stage_run_id: int, finished: int, *, critical: bool
) -> bool:
    """Count finished steps of a stage some of which failed (the run is locked)."""
    if not run.has_failures:
        run.has_failures = True
        run.save(update_fields=["has_failures"])
    fields: dict[str, Any] = {"has_failures": True}
    skipped = 0
    if critical:
        fields["status"] = RunStatus.FAILED
        skipped = skip_waiting_steps(stage_run_id, RunStatus.SKIPPED)
    stage_run = bulk.count_down(stage_run_id, finished + skipped, **fields)
    return stage_run.steps_left <= 0 and complete_stage(run, stage_run)


def skip_waiting_steps(stage_run_id: int, status: str) -> int:
    """Cancel the not-yet-started jobs of a stage; their step runs get ``status``."""
    now = timezone.now()
    waiting = StepRun.objects.using(_db()).filter(
        stage_run_id=stage_run_id, status=RunStatus.PENDING
    )
    ids = list(waiting.values_list("pk", flat=True))
    if not ids:
        return 0
    Job.objects.using(_db()).filter(step_run_id__in=ids, status__in=WAITING).update(
        status=JobStatus.CANCELLED, finished_at=now, unique_key=None
    )
    # Guarded: a worker may have started (or finished) one of them meanwhile, and
    # the caller subtracts only the steps changed here.
    return (
        StepRun.objects.using(_db())
        .filter(pk__in=ids, status=RunStatus.PENDING)
        .update(status=status, finished_at=now)
    )


def complete_stage(run: PipelineRun, stage_run: StageRun) -> bool:
    """Close a stage whose last step ended; start dependents whose turn it is.

    Returns whether a dependent started. Plain SQL: this runs at every stage's end,
    on the path from one stage to the next, where the ORM's Python costs a few
    tenths of a millisecond per statement.
    """
    failed = stage_run.status == RunStatus.FAILED
    if run.cancel_requested:
        stage_run.status = RunStatus.CANCELLED
    elif not failed:
        stage_run.status = RunStatus.SUCCEEDED
    stage_run.finished_at = timezone.now()
    conn = connections[_db()]
    with conn.cursor() as cursor:
        cursor.execute(
            f"UPDATE {STAGE_RUNS} SET status = %s, finished_at = %s WHERE id = %s",
            [
                stage_run.status,
                conn.ops.adapt_datetimefield_value(stage_run.finished_at),
                stage_run.pk,
            ],
        )
    if stage_run.status == RunStatus.SUCCEEDED and _release_dependents(run, stage_run):
        return True  # a dependent started, so the run goes on
    maybe_finish(run)
    return False


def _release_dependents(run: PipelineRun, stage_run: StageRun) -> bool:
    """Count ``stage_run`` done for its dependents; whether one of them now runs."""
    ready, waiting = _dependents(run.pk, stage_run.stage_name)
    stopping = bool(ready) and _stopping(run)
    # A dependent that does not start now has its counter written here; one that
    # starts gets its zero with the start.
    lowered = waiting + ([pk for pk, _ in ready] if stopping else [])
    if lowered:
        marks = ", ".join(["%s"] * len(lowered))
        with connections[_db()].cursor() as cursor:
            cursor.execute(
                f"UPDATE {STAGE_RUNS} SET prerequisites_left = prerequisites_left - 1 "
                f"WHERE id IN ({marks})",
                lowered,
            )
    if stopping:
        return False
    running = False
    for pk, name in ready:
        dependent = StageRun(
            pk=pk, run_id=run.pk, stage_name=name, status=RunStatus.PENDING
        )
        start_stage(run, dependent)
        running = running or dependent.status == RunStatus.RUNNING
    return running


def _dependents(run_id: int, stage_name: str) -> tuple[list[Named], list[int]]:
    """The pending stage runs after ``stage_name``.

    Returns ``(id, name)`` of those it was the last prerequisite of, and the ids of
    those still waiting for another.
    """
    with connections[_db()].cursor() as cursor:
        cursor.execute(
            f"SELECT id, stage_name, depends_on, prerequisites_left FROM {STAGE_RUNS} "
            "WHERE run_id = %s AND status = %s ORDER BY id",
            [run_id, RunStatus.PENDING],
        )
        rows = cursor.fetchall()
    ready: list[Named] = []
    waiting: list[int] = []
    for pk, name, depends_on, left in rows:
        if isinstance(depends_on, str | bytes):  # JSON text on every vendor's cursor
            depends_on = json.loads(depends_on)
        if stage_name not in depends_on:
            continue
        if left <= 1:
            ready.append((int(pk), name))
        else:
            waiting.append(int(pk))
    return ready, waiting


def _stopping(run: PipelineRun) -> bool:
    if run.cancel_requested:
        return True
    # A stage fails only through a failed step, which marks the run first.
    if not run.has_failures:
        return False
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
        for stage_run in run.stage_runs.filter(status=RunStatus.RUNNING).order_by("id"):
            skipped = skip_waiting_steps(stage_run.pk, RunStatus.CANCELLED)
            if skipped and bulk.count_down(stage_run.pk, skipped).steps_left <= 0:
                complete_stage(run, stage_run)
        maybe_finish(run)
    logger.info("Pipeline run %s cancel requested", run_id, extra={"action": "cancel"})
    return run
