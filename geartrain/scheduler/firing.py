"""Firing one slot: the fire row and its target's job or run, in one transaction.

The fire row is inserted first, in a savepoint: the unique constraint on
(schedule, slot) makes a second scheduler's insert fail, and that scheduler then does
nothing. The job or the pipeline run is created in the same transaction, so a slot is
either fired with its work or not at all (invariant 2).
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings as django_settings
from django.db import IntegrityError, transaction

from geartrain import compat
from geartrain.conf import BACKEND_PATH, get_settings
from geartrain.exceptions import GeartrainError
from geartrain.models import (
    FireKind,
    FireStatus,
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
