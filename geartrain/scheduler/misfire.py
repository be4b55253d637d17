"""Misfire policies: which due cron slots fire now and which are dropped (pure).

A slot is *due* once its instant has passed. A due slot is *late* when it is more
than ``grace`` seconds in the past (a scheduler was down, or the slot was held by a
dependency). The policies:

``catch_up``
    Every due slot fires, oldest first.
``coalesce``
    Late slots become one run, for the latest of them; slots within the grace
    period fire normally.
``skip``
    Late slots are dropped; slots within the grace period fire.

Whatever the policy, at most ``limit`` slots fire at once: the latest of those the
policy fires; the older ones are dropped too. So a long grace period after a long
outage fires no more than a catch-up would.

:func:`plan` returns the decision; the scheduler records it. Nothing here touches the
database, so the rules are tested in milliseconds against a simulated clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from geartrain.scheduler.cron import CronExpression, next_fire, slots_between

__all__ = ["CATCH_UP", "COALESCE", "POLICIES", "SKIP", "Plan", "plan"]

CATCH_UP = "catch_up"
COALESCE = "coalesce"
SKIP = "skip"
POLICIES = (CATCH_UP, COALESCE, SKIP)
# After this many late slots, the rest of a long backlog is leapt over, not counted.
SCAN_LIMIT = 2_000
_TICK = timedelta(microseconds=1)
_MINUTE = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do with the due slots of one schedule at one instant."""

    fire: tuple[datetime, ...]
    """Slots to fire now, oldest first."""
    dropped: int
    """How many due slots are dropped: exact up to ``SCAN_LIMIT``, else at least."""
    first_dropped: datetime | None
    last_dropped: datetime | None
    reason: str
    """Why slots were dropped (empty when none were)."""
    next_slot: datetime | None
    """The first slot after those handled now; None when the schedule has ended."""


@dataclass(slots=True)
class _Tally:
    """Slots counted but not kept: how many, the first and the last."""

    count: int = 0
    first: datetime | None = None
    last: datetime | None = None

    def add(self, slot: datetime) -> None:
        self.count += 1
        if self.first is None:
            self.first = slot
        self.last = slot


def plan(
    expression: CronExpression,
    tz: ZoneInfo,
    next_slot: datetime,
    now: datetime,
    *,
    policy: str,
    grace: float | None,
    limit: int,
    end: datetime | None = None,
) -> Plan:
    """Decide which due slots from ``next_slot`` up to ``now`` fire.

    ``next_slot`` is the first slot not handled yet; ``end`` (inclusive) is the last
    instant a slot may have. ``grace`` is required by ``coalesce`` and ``skip``.
    """
    if policy not in POLICIES:
        raise ValueError(
            f"Misfire policy {policy!r} is unknown. Use one of: {', '.join(POLICIES)}."
        )
    if policy != CATCH_UP and grace is None:
        raise ValueError(f"Misfire policy {policy!r} needs a grace period in seconds.")
    if limit < 1:
        raise ValueError(f"Catch-up limit {limit!r} is below 1. Use 1 or more.")
    horizon = now if end is None else min(now, end)
    cutoff = now - timedelta(seconds=grace or 0)
    keep = limit if policy == CATCH_UP else 1
    # Late slots (every due slot with catch_up) and on-time ones, each with a tally
    # of those pushed out; a tally that reaches SCAN_LIMIT leaps once.
    late, kept = _Tally(), deque[datetime](maxlen=keep)
    over, on_time = _Tally(), deque[datetime](maxlen=limit)
    leapt_late = leapt_over = False
    slot: datetime | None = next_slot
    while slot is not None and slot <= horizon:
        if policy == CATCH_UP or slot < cutoff:  # late: more than grace seconds ago
            _push(kept, slot, late)
        else:
            _push(on_time, slot, over)
        if late.count >= SCAN_LIMIT and not leapt_late:
            leapt_late = True
            boundary = horizon if policy == CATCH_UP else min(horizon, cutoff - _TICK)
            slot = _leap(expression, tz, slot, boundary, keep + 1)
        elif over.count >= SCAN_LIMIT and not leapt_over:
            leapt_over = True
            slot = _leap(expression, tz, slot, horizon, limit + 1)
        slot = next_fire(expression, slot, tz)
    if end is not None and slot is not None and slot > end:
        slot = None
    reason = _settle(policy, kept, on_time, late, over, grace, limit)
    return _plan([*kept, *on_time], late, over, reason, slot)


def _settle(
    policy: str,
    kept: deque[datetime],
    on_time: deque[datetime],
    late: _Tally,
    over: _Tally,
    grace: float | None,
    limit: int,
) -> str:
    """Drop what the policy drops from ``kept``; the reason for every slot dropped."""
    reasons = []
    if policy == CATCH_UP:
        capped = late.count > 0
    elif policy == SKIP:
        if kept:
            late.add(kept.pop())
        if late.count:
            reasons.append(f"more than {grace:.15g} s late (misfire policy skip)")
        capped = over.count > 0
    else:
        if kept and len(kept) + len(on_time) > limit:
            late.add(kept.pop())  # no room left for the coalesced run
        if kept and late.count:
            reasons.append(f"coalesced into the run of slot {kept[-1].isoformat()}")
        # With nothing late kept, whatever was dropped made room for on-time slots.
        capped = not kept and bool(late.count or over.count)
    if capped:
        reasons.append(f"beyond the catch-up limit of {limit} slots")
    return "; ".join(reasons)


def _push(slots: deque[datetime], slot: datetime, pushed_out: _Tally) -> None:
    """Append ``slot``; count the oldest one out when ``slots`` is full."""
    if len(slots) == slots.maxlen:
        pushed_out.add(slots[0])
    slots.append(slot)


def _leap(
    expression: CronExpression,
    tz: ZoneInfo,
    start: datetime,
    boundary: datetime,
    needed: int,
) -> datetime:
    """An instant after ``start`` with at least ``needed`` slots up to ``boundary``.

    Skips the middle of a long backlog in a few bounded searches instead of one step
    per slot: windows growing back from ``boundary`` until one holds ``needed`` slots,
    then a bisection to the minute, so that about ``needed`` slots are left to walk
    even when slots are bunched (every minute of January, say). Returns ``start``
    when there is nothing to skip.
    """

    def enough(leap: datetime) -> bool:
        found = slots_between(expression, leap, boundary, tz, limit=needed)
        return len(found) == needed

    width = timedelta(minutes=needed)
    high = boundary  # too few slots after high
    while boundary - width > start and not enough(boundary - width):
        high = boundary - width
        width *= 4
    low = boundary - width  # enough slots after low, unless it is not after start
    if low <= start:
        if not enough(start):
            return start
        low = start
    while high - low > _MINUTE:
        middle = low + (high - low) / 2
        low, high = (middle, high) if enough(middle) else (low, middle)
    return low


def _plan(
    fire: list[datetime],
    late: _Tally,
    over: _Tally,
    reason: str,
    next_slot: datetime | None,
) -> Plan:
    """The plan; every late slot dropped comes before every on-time one dropped."""
    return Plan(
        fire=tuple(fire),
        dropped=late.count + over.count,
        first_dropped=late.first or over.first,
        last_dropped=over.last or late.last,
        reason=reason,
        next_slot=next_slot,
    )
