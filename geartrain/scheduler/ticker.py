"""One scheduler tick: find due schedules (by index), apply misfire policies and
dependencies, fire slots, and write the bookkeeping.

Due schedules are read in batches, each in its own transaction, locked with
``FOR UPDATE SKIP LOCKED`` where the database has it, so two schedulers share the work
instead of waiting on each other. Locks only save effort: the unique (schedule, slot)
constraint is what makes each slot fire once (see :mod:`geartrain.scheduler.firing`).

In a batch, the plain schedules (a task target, no dependency, every due slot fires)
are fired together: one insert of jobs, one of fires, one update of bookkeeping. The
others, and all of them if that bulk write is refused, go one schedule at a time.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timedelta

from django.db import DatabaseError, connections, transaction
from django.db.models import F
from django.utils import timezone

from geartrain.conf import get_settings
from geartrain.models import FireKind, Schedule, ScheduleDependency, ScheduleFire
from geartrain.scheduler import cron, dependencies, firing, misfire, outcomes

logger = logging.getLogger(__name__)


@dataclasses.dataclass(slots=True)
class TickReport:
    """What one tick did."""

    schedules: int = 0
    fired: int = 0
    skipped: int = 0
    held: int = 0
    next_due: datetime | None = None


def tick(now: datetime | None = None) -> TickReport:
    """Handle every schedule due at ``now`` (default: the current time)."""
    now = now or timezone.now()
    conf = get_settings()
    report = TickReport()
    outcomes.sync(now)
    _repair(now)
    while True:
        with transaction.atomic(using=conf.DATABASE):
            batch = _due_batch(now, conf.SCHEDULER_BATCH_SIZE)
            with_deps = set(
                ScheduleDependency.objects.using(conf.DATABASE)
                .filter(depender__in=[s.pk for s in batch])
                .values_list("depender_id", flat=True)
            )
            _handle_batch(batch, now, with_deps, report)
        report.schedules += len(batch)
        if len(batch) < conf.SCHEDULER_BATCH_SIZE:
            break
    report.next_due = next_due()
    return report


def _repair(now: datetime) -> None:
    """Give a next slot to enabled schedules that have none.

    ``Schedule.save()`` computes the next slot; a bulk ``update(enabled=True)`` or a
    ``bulk_create`` bypasses it and would leave a schedule that never fires. Ended
    schedules (their end passed) are left alone.
    """
    db = get_settings().DATABASE
    lost = (
        Schedule.objects.using(db)
        .filter(enabled=True, due_at__isnull=True)
        .exclude(end_at__lte=now)
    )
    for schedule in lost[:100]:
        schedule.reschedule(now, from_base=schedule.last_slot is None)
        if schedule.due_at is not None:
            logger.info(
                "Schedule %s had no next slot; now %s", schedule, schedule.due_at
            )
            Schedule.objects.using(db).filter(pk=schedule.pk).update(
                next_slot=schedule.next_slot, due_at=schedule.due_at
            )


def next_due() -> datetime | None:
    """The earliest ``due_at`` of any schedule (an index lookup)."""
    return (
        Schedule.objects.using(get_settings().DATABASE)
        .filter(due_at__isnull=False)
        .order_by("due_at")
        .values_list("due_at", flat=True)
        .first()
    )


def _due_batch(now: datetime, size: int) -> list[Schedule]:
    """The next ``size`` due schedules, earliest first.

    Ordered by ``due_at`` alone, so that the index yields them in order and the scan
    stops after ``size`` rows; a tie-breaker not in the index would make PostgreSQL
    read and sort every due row for each batch.
    """
    db = get_settings().DATABASE
    due = Schedule.objects.using(db).filter(due_at__lte=now).order_by("due_at")
    if connections[db].features.has_select_for_update_skip_locked:
        due = due.select_for_update(skip_locked=True)
    return list(due[:size])


def _handle_batch(
    batch: list[Schedule], now: datetime, with_deps: set[int], report: TickReport
) -> None:
    """Fire the plain due slots of ``batch`` in bulk, then the rest one by one.

    Plain: no dependency, no slot to drop, a task target that :func:`firing.fire_many`
    takes. Anything else, or a bulk insert that was refused, goes through
    :func:`_handle`, which writes the same rows one schedule at a time.
    """
    plans: dict[int, tuple[Schedule, misfire.Plan]] = {}
    for schedule in batch:
        plan = None if schedule.pk in with_deps else _plain_plan(schedule, now)
        if plan is not None:
            plans[schedule.pk] = (schedule, plan)
    done = _fire_many(plans, now, report) if plans else {}
    for schedule in batch:
        if schedule.pk not in done:
            _handle(schedule, now, schedule.pk in with_deps, report)


def _fire_many(
    plans: dict[int, tuple[Schedule, misfire.Plan]], now: datetime, report: TickReport
) -> dict[int, list[ScheduleFire]]:
    """Fires and bookkeeping in one savepoint; ``{}`` when it was rolled back."""
    items = [(schedule, plan.fire) for schedule, plan in plans.values()]
    try:
        with transaction.atomic(using=get_settings().DATABASE):
            done = firing.fire_many(items, now=now) or {}
            fired = _write_many(plans, done, now) if done else 0
    except DatabaseError:
        logger.warning("Bulk bookkeeping failed; firing one by one", exc_info=True)
        return {}
    report.fired += fired
    return done


def _plain_plan(schedule: Schedule, now: datetime) -> misfire.Plan | None:
    """The plan of a schedule whose due slots all fire and none is dropped."""
    if not schedule.enabled or schedule.next_slot is None:
        return None
    try:
        plan = _plan(schedule, schedule.next_slot, now)
    except Exception:  # _handle logs it and postpones the schedule
        return None
    return plan if plan.fire and not plan.dropped else None


def _plan(schedule: Schedule, next_slot: datetime, now: datetime) -> misfire.Plan:
    return misfire.plan(
        schedule.expression(),
        cron.zone(schedule.timezone),
        next_slot,
        now,
        policy=schedule.misfire,
        grace=schedule.grace_seconds,
        limit=schedule.catch_up_limit or get_settings().CATCH_UP_LIMIT,
        end=schedule.end_at,
    )


def _write_many(
    plans: dict[int, tuple[Schedule, misfire.Plan]],
    done: dict[int, list[ScheduleFire]],
    now: datetime,
) -> int:
    """:func:`_write` for every schedule fired in bulk; the number of fires.

    Schedules with the same new bookkeeping share one ``UPDATE`` (schedules due
    together mostly do); a ``CASE`` per row costs Django far more to build.
    """
    groups: dict[tuple[datetime | None, datetime, int], list[int]] = {}
    for pk, fires in done.items():
        plan = plans[pk][1]
        key = (plan.next_slot, plan.fire[-1], len(fires))
        groups.setdefault(key, []).append(pk)
    rows = Schedule.objects.using(get_settings().DATABASE)
    for (next_slot, last_slot, fired), pks in groups.items():
        rows.filter(pk__in=pks).update(
            next_slot=next_slot,
            due_at=next_slot,
            held_reason="",
            last_slot=last_slot,
            last_fired_at=now,
            total_runs=F("total_runs") + fired,
        )
    return sum(len(fires) for fires in done.values())


def _handle(
    schedule: Schedule, now: datetime, has_deps: bool, report: TickReport
) -> None:
    """Plan and fire one due schedule; a failure is logged and postpones it."""
    db = get_settings().DATABASE
    try:
        with transaction.atomic(using=db):
            _advance(schedule, now, has_deps, report)
    except Exception as exc:
        logger.exception("Schedule %s could not be handled", schedule.name)
        retry_at = now + timedelta(seconds=get_settings().SCHEDULER_INTERVAL)
        Schedule.objects.using(db).filter(pk=schedule.pk).update(
            due_at=retry_at, held_reason=f"error: {exc}"[:500]
        )


def _advance(
    schedule: Schedule, now: datetime, has_deps: bool, report: TickReport
) -> None:
    if not schedule.enabled or schedule.next_slot is None:
        # Disabled or re-enabled by a bulk UPDATE that skipped Schedule.save().
        schedule.reschedule(now)
        _write(schedule, schedule.next_slot, schedule.due_at, None, fired=0)
        return
    plan = _plan(schedule, schedule.next_slot, now)
    if plan.dropped and plan.last_dropped is not None:
        _record_dropped(schedule, plan, now)
        report.skipped += plan.dropped
    slots, next_slot = list(plan.fire), plan.next_slot
    started = now  # what the fires' fired_at and last_fired_at say
    if has_deps and slots:
        # One slot at a time: each start needs a new run of what it depends on.
        if len(slots) > 1:
            next_slot = slots[1]
        verdict = dependencies.check(schedule, now)
        if verdict.action == dependencies.HOLD:
            report.held += 1
            held_at = verdict.recheck_at
            _write(schedule, slots[0], held_at, plan.last_dropped, 0, verdict.reason)
            return
        if verdict.action == dependencies.SKIP:
            firing.record_skip(schedule, slots[0], verdict.reason, now=now)
            report.skipped += 1
            _write(schedule, next_slot, next_slot, slots[0], fired=0)
            return
        slots = slots[:1]
        started = verdict.start_time(now)
    fired = 0
    for slot in slots:
        row = firing.fire(schedule, slot, kind=FireKind.CRON, now=started)
        if row is not None and row.job_id is None and row.pipeline_run_id is None:
            report.skipped += 1
        elif row is not None:
            fired += 1
    report.fired += fired
    last = slots[-1] if slots else plan.last_dropped
    _write(schedule, next_slot, next_slot, last, fired, now=started)


def _record_dropped(schedule: Schedule, plan: misfire.Plan, now: datetime) -> None:
    if plan.last_dropped is None or plan.first_dropped is None:
        return
    # Past SCAN_LIMIT the middle of a backlog is leapt over, not counted.
    count = str(plan.dropped)
    if plan.dropped >= misfire.SCAN_LIMIT:
        count = f"at least {count}"
    if plan.dropped == 1:
        reason = f"1 slot {plan.reason}"
    else:
        reason = (
            f"{count} slots from {plan.first_dropped.isoformat()} to "
            f"{plan.last_dropped.isoformat()} {plan.reason}"
        )
    firing.record_skip(schedule, plan.last_dropped, reason, now=now)


def _write(
    schedule: Schedule,
    next_slot: datetime | None,
    due_at: datetime | None,
    last_slot: datetime | None,
    fired: int,
    held: str = "",
    *,
    now: datetime | None = None,
) -> None:
    """Write the bookkeeping columns only (never the configuration)."""
    values: dict[str, object] = {
        "next_slot": next_slot,
        "due_at": due_at,
        "held_reason": held[:500],
    }
    if last_slot is not None:
        values["last_slot"] = last_slot
    if fired:
        values["last_fired_at"] = now
        values["total_runs"] = F("total_runs") + fired
    Schedule.objects.using(get_settings().DATABASE).filter(pk=schedule.pk).update(
        **values
    )
