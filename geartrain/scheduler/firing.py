"""Firing one slot: the fire row and its target's job or run, in one transaction.

The fire row is inserted first, in a savepoint: the unique constraint on
(schedule, slot) makes a second scheduler's insert fail, and that scheduler then does
nothing. The job or the pipeline run is created in the same transaction, so a slot is
either fired with its work or not at all (invariant 2).

:func:`fire_many` writes the same rows for many plain task schedules at once (one
``INSERT`` of jobs, one of fires, in one savepoint); the unique constraint still
decides, and any refusal sends the whole batch back to :func:`fire`, one by one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from django.conf import settings as django_settings
from django.db import DatabaseError, IntegrityError, connections, transaction

from geartrain import compat, jobs
from geartrain.conf import BACKEND_PATH, get_settings
from geartrain.exceptions import GeartrainError
from geartrain.models import (
    FireKind,
    FireStatus,
    Job,
    Schedule,
    ScheduleFire,
    Trigger,
)
from geartrain.models.job import FINISHED
from geartrain.pipelines import launching
from geartrain.registry import registry

logger = logging.getLogger(__name__)


def _db() -> str:
    return get_settings().DATABASE


def fire(
    schedule: Schedule,
    slot: datetime | None,
    *,
    kind: str,
    now: datetime,
    launched_by: str = "",
) -> ScheduleFire | None:
    """Fire ``slot`` of ``schedule`` (None: run now); None if it already fired.

    A target that refuses to start (pipeline overlap, disabled pipeline, previous job
    still running, a definition that no longer validates) gives a ``skipped`` fire
    whose ``reason`` says why; it is logged too.
    """
    db = _db()
    with transaction.atomic(using=db):
        try:
            with transaction.atomic(using=db):
                row = ScheduleFire.objects.using(db).create(
                    schedule=schedule,
                    slot=slot,
                    kind=kind,
                    status=FireStatus.FIRED,
                    fired_at=now,
                    launched_by=launched_by,
                )
        except IntegrityError:
            logger.debug("Slot %s of schedule %s already fired", slot, schedule.name)
            return None
        reason = _start(schedule, row, kind)
        if reason:
            row.status = FireStatus.SKIPPED
            row.reason = reason[:500]
            row.finished_at = now
            logger.warning(
                "Schedule %s skipped slot %s: %s",
                schedule.name,
                slot.isoformat() if slot else "run now",
                reason,
                extra={"action": "schedule_skip", "schedule": schedule.name},
            )
        row.save(
            using=db,
            update_fields=["status", "reason", "finished_at", "job", "pipeline_run"],
        )
    return row


_Planned = tuple[Schedule, datetime, Job, compat.AnyTask]


def fire_many(
    items: Sequence[tuple[Schedule, Sequence[datetime]]], *, now: datetime
) -> dict[int, list[ScheduleFire]] | None:
    """Fire cron slots of many schedules in bulk: ``{schedule id: its fires}``.

    The rows are those :func:`fire` would write, slot by slot. Schedules that need
    the one-by-one path are left out of the result, unwritten: pipeline targets,
    ``skip_if_running``, unique tasks, and targets that fail a check (so that
    :func:`fire` records why). None: nothing was written, because a slot had fired
    already or the database refused the bulk insert (or cannot return its ids).
    """
    if not connections[_db()].features.can_return_rows_from_bulk_insert:
        return None
    planned: list[_Planned] = []
    for schedule, slots in items:
        task = _plain_task(schedule)
        if task is None:
            continue
        try:
            built = [(schedule, slot, _build(schedule, task), task) for slot in slots]
        except _REFUSALS:  # fire() records why
            continue
        planned.extend(built)
    return _insert_many(planned, now) if planned else {}


_REFUSALS = (GeartrainError, compat.InvalidTask, TypeError, ValueError)


def _plain_task(schedule: Schedule) -> compat.AnyTask | None:
    """The configured task of a schedule :func:`fire_many` can fire, else None."""
    if schedule.pipeline_id is not None or schedule.skip_if_running:
        return None
    try:
        task = registry.get(schedule.task_path)
        backend = django_settings.TASKS.get(task.backend, {}).get("BACKEND")
        if backend != BACKEND_PATH or getattr(task, "unique", False):
            return None
        return task.using(queue_name=schedule.queue, priority=schedule.priority)
    except _REFUSALS:
        return None


def _build(schedule: Schedule, task: compat.AnyTask) -> Job:
    return jobs.build_job(task, schedule.args, schedule.kwargs, backend=task.backend)


def _insert_many(
    planned: list[_Planned], now: datetime
) -> dict[int, list[ScheduleFire]] | None:
    """One savepoint: the jobs, then their fires; None when it was rolled back."""
    db = _db()
    try:
        with transaction.atomic(using=db):
            Job.objects.using(db).bulk_create([job for _, _, job, _ in planned])
            rows = ScheduleFire.objects.using(db).bulk_create(
                ScheduleFire(
                    schedule=schedule,
                    slot=slot,
                    kind=FireKind.CRON,
                    status=FireStatus.FIRED,
                    fired_at=now,
                    job=job,
                )
                for schedule, slot, job, _ in planned
            )
    except DatabaseError:
        logger.debug("Bulk fire of %s slots refused; firing one by one", len(planned))
        return None
    fired: dict[int, list[ScheduleFire]] = {}
    for row, (schedule, _, job, task) in zip(rows, planned, strict=True):
        fired.setdefault(schedule.pk, []).append(row)
        sender = type(task.get_backend())
        if compat.task_enqueued.has_listeners(sender):
            result = jobs.to_task_result(job, task)
            compat.task_enqueued.send(sender, task_result=result)
    return fired


def record_skip(
    schedule: Schedule, slot: datetime, reason: str, *, now: datetime
) -> ScheduleFire | None:
    """Record ``slot`` as skipped for ``reason`` (once: None if it was handled)."""
    db = _db()
    try:
        with transaction.atomic(using=db):
            row = ScheduleFire.objects.using(db).create(
                schedule=schedule,
                slot=slot,
                kind=FireKind.CRON,
                status=FireStatus.SKIPPED,
                reason=reason[:500],
                fired_at=now,
                finished_at=now,
            )
    except IntegrityError:
        return None
    logger.warning(
        "Schedule %s skipped slot %s: %s",
        schedule.name,
        slot.isoformat(),
        reason,
        extra={"action": "schedule_skip", "schedule": schedule.name},
    )
    return row


def _start(schedule: Schedule, row: ScheduleFire, kind: str) -> str:
    """Start the target and link it to ``row``; the reason it did not start, or ""."""
    try:
        if schedule.pipeline is not None:
            trigger = Trigger.MANUAL if kind == FireKind.MANUAL else Trigger.SCHEDULE
            run = launching.launch(
                schedule.pipeline,
                schedule.kwargs,
                trigger=trigger,
                launched_by=row.launched_by or f"schedule {schedule.name}",
            )
            row.pipeline_run = run
            return ""
        busy = _still_running(schedule, row)
        if busy:
            return busy
        row.job_id = _enqueue(schedule)
    except launching.LaunchRefused as exc:
        return str(exc)
    except (GeartrainError, compat.InvalidTask, TypeError, ValueError) as exc:
        logger.exception("Schedule %s could not start its target", schedule.name)
        return f"the target could not start: {exc}"
    return ""


def _still_running(schedule: Schedule, row: ScheduleFire) -> str:
    """Why a ``skip_if_running`` schedule must skip, or ""."""
    if not schedule.skip_if_running:
        return ""
    previous = (
        ScheduleFire.objects.using(_db())
        .filter(schedule=schedule, job__isnull=False)
        .exclude(pk=row.pk)
        .exclude(job__status__in=FINISHED)
        .values_list("job_id", "job__status")
        .first()
    )
    if previous is None:
        return ""
    job_id, status = previous
    return (
        f"job {job_id} of an earlier fire is still {status} and the schedule skips "
        "while its previous job runs"
    )


def _enqueue(schedule: Schedule) -> int:
    """Enqueue the schedule's task; the job's id."""
    task = registry.get(schedule.task_path)
    backend = django_settings.TASKS.get(task.backend, {}).get("BACKEND")
    if backend != BACKEND_PATH:
        raise compat.InvalidTask(
            f"Task {schedule.task_path!r} uses backend {task.backend!r}, which is not "
            f"{BACKEND_PATH}, so its job could not be tracked. Use a geartrain backend."
        )
    configured = task.using(queue_name=schedule.queue, priority=schedule.priority)
    result = configured.enqueue(*schedule.args, **schedule.kwargs)
    return int(result.id)
