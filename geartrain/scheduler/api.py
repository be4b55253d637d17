"""Operations on schedules, shared by code, the ``geartrain`` command and the admin.

``enable``, ``disable`` and ``toggle`` change only ``enabled`` (and the next slot that
follows from it); ``run_now`` fires the target once without touching the cron timing;
``backfill`` fires the slots of a past interval, each at most once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from geartrain.conf import get_settings
from geartrain.exceptions import GeartrainError
from geartrain.models import FireKind, FireStatus, Schedule, ScheduleFire
from geartrain.scheduler import cron, firing

logger = logging.getLogger(__name__)

BACKFILL_LIMIT = 10_000


class ScheduleNotFound(GeartrainError, LookupError):
    """No schedule has the given name or id."""

    def __init__(self, key: str | int) -> None:
        self.key = key
        super().__init__(
            f"No schedule is called {key!r}. Look up schedule names in the admin, "
            f"under Schedules, or with `geartrain schedules`."
        )


class InvalidBackfill(GeartrainError, ValueError):
    """A backfill interval that cannot be run."""


def _db() -> str:
    return get_settings().DATABASE


def get(key: str | int | Schedule) -> Schedule:
    """The schedule named ``key`` (or with that id).

    Raises:
        ScheduleNotFound: when there is none.
    """
    if isinstance(key, Schedule):
        return key
    rows = Schedule.objects.using(_db())
    found = rows.filter(name=key).first() if isinstance(key, str) else None
    if found is None and (isinstance(key, int) or str(key).isdigit()):
        found = rows.filter(pk=int(key)).first()
    if found is None:
        raise ScheduleNotFound(key)
    return found


def set_enabled(schedules: Iterable[Schedule | str | int], enabled: bool | None) -> int:
    """Enable (True), disable (False) or toggle (None) schedules; how many changed."""
    changed = 0
    with transaction.atomic(using=_db()):
        for key in schedules:
            schedule = get(key)
            new = (not schedule.enabled) if enabled is None else enabled
            if new != schedule.enabled:
                schedule.enabled = new
                schedule.save(update_fields=["enabled"])
                changed += 1
    return changed


def enable(*schedules: Schedule | str | int) -> int:
    """Enable schedules: the next slot counts from now (the past is not fired)."""
    return set_enabled(schedules, True)


def disable(*schedules: Schedule | str | int) -> int:
    """Disable schedules: no slot fires until enabled again."""
    return set_enabled(schedules, False)


def toggle(*schedules: Schedule | str | int) -> int:
    """Flip ``enabled`` of each schedule."""
    return set_enabled(schedules, None)


def run_now(schedule: Schedule | str | int, *, launched_by: str = "") -> ScheduleFire:
    """Fire the schedule's target once, now; its cron timing is unchanged.

    Works on a disabled schedule too. The fire is ``skipped`` (with a reason) when the
    target refuses, e.g. a pipeline that is already running.
    """
    target = get(schedule)
    row = firing.fire(
        target, None, kind=FireKind.MANUAL, now=timezone.now(), launched_by=launched_by
    )
    if row is None:  # pragma: no cover - a fire without a slot never collides
        raise RuntimeError(f"Run now of schedule {target.name!r} collided")
    _count_starts(target, [row])
    return row


def _count_starts(schedule: Schedule, rows: Iterable[ScheduleFire]) -> None:
    """Count fires that started work as the schedule's runs and latest start.

    Dependencies read ``last_fired_at`` as "the depender's last start", so manual and
    backfilled runs count like cron ones.
    """
    started = [row for row in rows if row.status != FireStatus.SKIPPED]
    if started:
        Schedule.objects.using(_db()).filter(pk=schedule.pk).update(
            last_fired_at=max(row.fired_at for row in started),
            total_runs=F("total_runs") + len(started),
        )


@dataclass(slots=True)
class BackfillReport:
    """Slots of a backfill: fired now, and already handled before."""

    fired: list[ScheduleFire] = field(default_factory=list)
    already: list[datetime] = field(default_factory=list)


def backfill(
    schedule: Schedule | str | int,
    start: datetime,
    end: datetime,
    *,
    launched_by: str = "",
) -> BackfillReport:
    """Fire every slot of ``schedule`` in ``[start, end]`` that has not fired yet."""
    target = get(schedule)
    now = timezone.now()
    if end > now:
        raise InvalidBackfill(
            f"The backfill end {end.isoformat()} is in the future. Backfill only past "
            "slots: use an end at or before now; later slots fire on schedule."
        )
    if start > end:
        raise InvalidBackfill(
            f"The backfill start {start.isoformat()} is after its end "
            f"{end.isoformat()}. Swap them."
        )
    tz = cron.zone(target.timezone)
    expression = target.expression()
    slots = cron.slots_between(expression, start - _TICK, end, tz, BACKFILL_LIMIT + 1)
    if len(slots) > BACKFILL_LIMIT:
        raise InvalidBackfill(
            f"The interval {start.isoformat()} to {end.isoformat()} holds more than "
            f"{BACKFILL_LIMIT} slots of {target.cron!r}. Backfill a shorter interval."
        )
    report = BackfillReport()
    for slot in slots:
        row = firing.fire(
            target, slot, kind=FireKind.BACKFILL, now=now, launched_by=launched_by
        )
        if row is None:
            report.already.append(slot)
        else:
            report.fired.append(row)
    _count_starts(target, report.fired)
    logger.info(
        "Backfill of schedule %s: %s slots fired, %s already handled",
        target.name,
        len(report.fired),
        len(report.already),
    )
    return report


_TICK = timedelta(microseconds=1)
