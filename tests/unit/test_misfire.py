"""Tests for geartrain.scheduler.misfire.plan: the three policies against a brute force.

The oracle lists the due slots minute by minute with ``fires_at`` from test_cron (an
evaluator independent of the cron module), then applies each policy's documented rule:

* a due slot is *late* when it is more than ``grace`` seconds before ``now``;
* ``catch_up`` fires the due slots;
* ``skip`` fires the due slots that are not late;
* ``coalesce`` fires the latest late slot, then the ones that are not late;
* of those, only the latest ``limit`` fire, whatever the policy;
* every other due slot is dropped, and ``next_slot`` is the first slot after ``now``
  (or after ``end``), None once that is past ``end``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geartrain.scheduler.cron import CronExpression
from geartrain.scheduler.misfire import (
    CATCH_UP,
    COALESCE,
    POLICIES,
    SCAN_LIMIT,
    SKIP,
    Plan,
    plan,
)
from tests.unit.test_cron import (
    DST_ZONES,
    MINUTE,
    ZONES,
    Spec,
    brute_force,
    field,
    fires_at,
    instants,
    spec_of,
    utc,
)

SECOND = timedelta(seconds=1)
TINY = timedelta(microseconds=1)
MIN = datetime.min.replace(tzinfo=UTC)
PROPERTY = settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# --- the oracle --------------------------------------------------------------


def following(spec: Spec, tz: ZoneInfo, after: datetime) -> datetime:
    """The first firing instant strictly after ``after``, minute by minute."""
    moment = after.astimezone(UTC).replace(second=0, microsecond=0) + MINUTE
    for _ in range(60 * 24 * 400):
        if fires_at(spec, moment, tz):
            return moment
        moment += MINUTE
    raise AssertionError(f"{spec.text} has no slot within 400 days of {after}")


def latest(
    spec: Spec, tz: ZoneInfo, before: datetime, count: int, floor: datetime
) -> list[datetime]:
    """Up to ``count`` firing instants ``s`` with ``floor <= s < before``, in order."""
    moment = before.astimezone(UTC).replace(second=0, microsecond=0)
    if moment == before:
        moment -= MINUTE
    found: list[datetime] = []
    while len(found) < count and moment >= floor:
        if fires_at(spec, moment, tz):
            found.append(moment)
        moment -= MINUTE
    return found[::-1]


@dataclass(frozen=True)
class Case:
    spec: Spec
    tz: ZoneInfo
    next_slot: datetime
    now: datetime
    policy: str
    grace: float | None
    limit: int
    end: datetime | None

    @property
    def horizon(self) -> datetime:
        return self.now if self.end is None else min(self.now, self.end)

    def is_late(self, slot: datetime) -> bool:
        return (self.now - slot).total_seconds() > (self.grace or 0)

    def run(self) -> Plan:
        return plan(
            CronExpression.parse(self.spec.text),
            self.tz,
            self.next_slot,
            self.now,
            policy=self.policy,
            grace=self.grace,
            limit=self.limit,
            end=self.end,
        )

    def expected_next(self) -> datetime | None:
        after = self.next_slot
        if after <= self.horizon:
            after = following(self.spec, self.tz, self.horizon)
        return None if self.end is not None and after > self.end else after


def due_slots(case: Case) -> list[datetime]:
    """``next_slot`` and every later firing instant up to the horizon."""
    return brute_force(case.spec, case.next_slot - SECOND, case.horizon, case.tz)


def expected_plan(case: Case) -> Plan:
    """What ``plan`` must return, built from the brute-force list of due slots."""
    due = due_slots(case)
    late = [s for s in due if case.is_late(s)]
    on_time = [s for s in due if not case.is_late(s)]
    reason = ""
    if case.policy == CATCH_UP:
        fire = due[-case.limit :]
        dropped = due[: len(due) - len(fire)]
        if dropped:
            reason = f"beyond the catch-up limit of {case.limit} slots"
    elif case.policy == SKIP:
        fire = on_time[-case.limit :]
        dropped = late + on_time[: len(on_time) - len(fire)]
        reasons = []
        if late:
            reasons.append(f"more than {case.grace:.15g} s late (misfire policy skip)")
        if len(fire) < len(on_time):
            reasons.append(f"beyond the catch-up limit of {case.limit} slots")
        reason = "; ".join(reasons)
    else:
        wanted = late[-1:] + on_time
        fire = wanted[-case.limit :]
        dropped = due[: len(due) - len(fire)]
        if len(fire) < len(wanted):
            reason = f"beyond the catch-up limit of {case.limit} slots"
        elif dropped:
            reason = f"coalesced into the run of slot {late[-1].isoformat()}"
    return Plan(
        fire=tuple(fire),
        dropped=len(dropped),
        first_dropped=dropped[0] if dropped else None,
        last_dropped=dropped[-1] if dropped else None,
        reason=reason,
        next_slot=case.expected_next(),
    )


# --- strategies --------------------------------------------------------------


@st.composite
def frequent_specs(draw: st.DrawFn) -> Spec:
    """A random expression that fires at least once a week (every day, most often)."""
    minute = draw(field(0, 59, 59))
    hour = draw(field(0, 23, 23))
    weekday = ("*", frozenset(range(7)))
    if draw(st.integers(0, 3)) == 0:
        weekday = draw(field(0, 7, 6, "SUN MON TUE WED THU FRI SAT"))
    return Spec(
        " ".join((minute[0], hour[0], "*", "*", weekday[0])),
        minute[1],
        hour[1],
        frozenset(range(1, 32)),
        frozenset(range(1, 13)),
        frozenset(v % 7 for v in weekday[1]),
        True,
        weekday[0].startswith("*"),
    )


@st.composite
def cases(
    draw: st.DrawFn, policy: str | None = None, near_change: bool | None = None
) -> Case:
    """A schedule, its first unhandled slot, and an instant up to 30 hours later."""
    near = draw(st.booleans()) if near_change is None else near_change
    name = draw(st.sampled_from(DST_ZONES if near else ZONES))
    spec, tz = draw(frequent_specs()), ZoneInfo(name)
    next_slot = following(spec, tz, draw(instants(name, near)))
    now = next_slot + timedelta(seconds=draw(st.integers(-3600, 30 * 3600)))
    policy = policy or draw(st.sampled_from(POLICIES))
    grace: float | None = draw(
        st.one_of(st.integers(0, 8 * 3600), st.sampled_from([0, 60, 300, 3600]))
    )
    if policy == CATCH_UP and draw(st.booleans()):
        grace = None
    elif grace is not None and draw(st.booleans()):
        grace += 0.5
    limit = draw(st.one_of(st.integers(1, 40), st.just(10**6)))
    end = None
    if draw(st.booleans()):
        end = next_slot + timedelta(seconds=draw(st.integers(-3600, 32 * 3600)))
    return Case(spec, tz, next_slot, now, policy, grace, limit, end)


def check_invariants(case: Case, result: Plan) -> None:
    """What holds under every policy, independent of the expected plan."""
    assert list(result.fire) == sorted(set(result.fire))
    assert all(case.next_slot <= slot <= case.horizon for slot in result.fire)
    due = due_slots(case)
    assert set(result.fire) <= set(due)
    if len(due) - len(result.fire) < SCAN_LIMIT:
        assert result.dropped + len(result.fire) == len(due)
    if result.next_slot is not None:
        assert result.next_slot > case.horizon
        assert result.next_slot >= case.next_slot
        assert case.end is None or result.next_slot <= case.end
    assert bool(result.reason) == bool(result.dropped)


# --- properties --------------------------------------------------------------


@PROPERTY
@given(case=cases(CATCH_UP))
def test_catch_up_fires_the_latest_limit_due_slots(case):
    result = case.run()
    check_invariants(case, result)
    assert len(result.fire) == min(case.limit, len(due_slots(case)))
    assert result == expected_plan(case)


@PROPERTY
@given(case=cases(SKIP))
def test_skip_fires_exactly_the_due_slots_within_grace(case):
    result = case.run()
    check_invariants(case, result)
    assert all(not case.is_late(slot) for slot in result.fire)
    assert result == expected_plan(case)


@PROPERTY
@given(case=cases(COALESCE))
def test_coalesce_fires_the_latest_late_slot_and_the_on_time_ones(case):
    result = case.run()
    check_invariants(case, result)
    assert sum(case.is_late(slot) for slot in result.fire) <= 1
    assert result == expected_plan(case)


@settings(PROPERTY, max_examples=200)
@given(case=cases(near_change=True))
def test_every_policy_across_clock_changes(case):
    result = case.run()
    check_invariants(case, result)
    assert result == expected_plan(case)


# --- backlogs longer than SCAN_LIMIT -----------------------------------------

DENSE = [
    "* * * * *",
    "*/5 * * * *",
    "0,30 * * * *",
    "*/2 9,10,11,12,13,14,15,16,17 * * 1,2,3,4,5",
    "7 * * * *",
    "* * 1 * *",  # bunched: every minute of the first of each month
]


@st.composite
def backlogs(draw: st.DrawFn) -> Case:
    """A dense schedule whose scheduler was down long enough to exceed SCAN_LIMIT."""
    text = draw(st.sampled_from(DENSE))
    spec, name = spec_of(text), draw(st.sampled_from(["UTC", *DST_ZONES]))
    tz = ZoneInfo(name)
    minutes_per_slot = {
        "* * * * *": 1,
        "*/5 * * * *": 5,
        "0,30 * * * *": 30,
        "* * 1 * *": 30,
    }
    per_slot = minutes_per_slot.get(text, 60)
    down = timedelta(minutes=per_slot * 3 * SCAN_LIMIT)
    now = draw(instants(name, False)).astimezone(UTC)
    now += timedelta(minutes=draw(st.integers(0, per_slot * SCAN_LIMIT)))
    next_slot = following(spec, tz, now - down)
    policy = draw(st.sampled_from(POLICIES))
    grace = draw(st.sampled_from([0, 59, 60, 3600, 86400]))
    limit = draw(st.sampled_from([1, 2, 100, 777]))
    end = None
    if draw(st.booleans()):
        end = now + timedelta(hours=draw(st.integers(-24, 48)))
    return Case(spec, tz, next_slot, now, policy, grace, limit, end)


@settings(PROPERTY, max_examples=40)
@given(case=backlogs())
def test_long_backlogs_still_fire_the_right_slots_and_find_the_next(case):
    result = case.run()
    if case.policy == CATCH_UP:
        fire = latest(case.spec, case.tz, case.horizon + TINY, case.limit + 1, MIN)
        dropped_last, fire = fire[0], fire[1:]
    else:
        cutoff = case.now - timedelta(seconds=case.grace or 0)
        bound = min(cutoff, case.horizon + TINY)
        dropped_last, newest_late = latest(case.spec, case.tz, bound, 2, MIN)
        first_on_time = max(cutoff, case.next_slot) - TINY
        on_time = brute_force(case.spec, first_on_time, case.horizon, case.tz)
        wanted = [newest_late, *on_time] if case.policy == COALESCE else on_time
        if case.policy == SKIP:
            dropped_last = newest_late
        fire = wanted[-case.limit :]
        if len(fire) < len(wanted):  # the limit dropped the oldest of those too
            dropped_last = wanted[len(wanted) - len(fire) - 1]
    assert list(result.fire) == fire
    assert result.next_slot == case.expected_next()
    assert result.first_dropped == case.next_slot
    assert result.last_dropped == dropped_last
    assert result.dropped >= SCAN_LIMIT
    assert result.dropped + len(fire) <= (case.horizon - case.next_slot) // MINUTE + 1


def test_a_backlog_of_a_year_of_minutes_keeps_its_last_slots():
    expression, tz = CronExpression.parse("* * * * *"), ZoneInfo("Europe/Berlin")
    now = utc(2026, 3, 29, 1, 0) + timedelta(seconds=30)  # 02:00 CET jumps to 03:00
    result = plan(
        expression, tz, utc(2025, 3, 1), now, policy=CATCH_UP, grace=None, limit=3
    )
    assert result.fire == (
        utc(2026, 3, 29, 0, 58),
        utc(2026, 3, 29, 0, 59),
        utc(2026, 3, 29, 1, 0),
    )
    assert result.next_slot == utc(2026, 3, 29, 1, 1)
    assert result.reason == "beyond the catch-up limit of 3 slots"


# --- the grace boundary and the end ------------------------------------------


@pytest.mark.parametrize(
    ("late_by", "fires"), [(59, True), (60, True), (61, False)], ids=str
)
def test_a_slot_exactly_grace_seconds_late_still_runs(late_by, fires):
    slot = utc(2026, 3, 2, 8, 5)
    now = slot + timedelta(seconds=late_by)
    result = plan(
        CronExpression.parse("*/5 * * * *"),
        ZoneInfo("UTC"),
        slot,
        now,
        policy=SKIP,
        grace=60,
        limit=1,
    )
    assert result.fire == ((slot,) if fires else ())
    assert result.dropped == (0 if fires else 1)


@pytest.mark.parametrize(
    ("grace", "shown"), [(1_000_000, "1000000"), (60.5, "60.5"), (0, "0")]
)
def test_the_skip_reason_shows_the_grace_period_as_written(grace, shown):
    slot = utc(2026, 3, 2, 8, 5)
    now = slot + timedelta(seconds=grace + 1)
    result = plan(CronExpression.parse("*/5 * * * *"), ZoneInfo("UTC"), slot, now,
                  policy=SKIP, grace=grace, limit=10**6)  # fmt: skip
    assert result.reason == f"more than {shown} s late (misfire policy skip)"


# --- the limit under skip and coalesce ---------------------------------------

HOURLY = CronExpression.parse("0 * * * *")
DOWN_FROM = utc(2026, 3, 2, 0, 0)  # the first unhandled slot
BACK_AT = utc(2026, 3, 2, 10, 30)  # slots 00:00 to 10:00 are due
LIMITED = "beyond the catch-up limit of {} slots"
COALESCED = "coalesced into the run of slot"


SKIP_5H = "more than 18000 s late (misfire policy skip)"


@pytest.mark.parametrize(
    ("policy", "grace", "limit", "fire_hours", "dropped", "reason"),
    [
        # Grace 5 h: 06:00 to 10:00 are on time (5 slots), 00:00 to 05:00 late (6).
        (SKIP, 5 * 3600, 3, (8, 9, 10), 8, f"{SKIP_5H}; {LIMITED.format(3)}"),
        (SKIP, 5 * 3600, 5, (6, 7, 8, 9, 10), 6, SKIP_5H),
        (SKIP, 86400, 2, (9, 10), 9, LIMITED.format(2)),
        # The coalesced run (05:00) is the first to go when on-time slots fill it.
        (COALESCE, 5 * 3600, 5, (6, 7, 8, 9, 10), 6, LIMITED.format(5)),
        (
            COALESCE,
            5 * 3600,
            6,
            (5, 6, 7, 8, 9, 10),
            5,
            f"{COALESCED} 2026-03-02T05:00:00+00:00",
        ),
        (COALESCE, 86400, 4, (7, 8, 9, 10), 7, LIMITED.format(4)),
    ],
)
def test_the_limit_holds_under_skip_and_coalesce(
    policy, grace, limit, fire_hours, dropped, reason
):
    result = plan(HOURLY, ZoneInfo("UTC"), DOWN_FROM, BACK_AT,
                  policy=policy, grace=grace, limit=limit)  # fmt: skip
    assert result.fire == tuple(utc(2026, 3, 2, h) for h in fire_hours)
    assert result.dropped == dropped
    assert result.first_dropped == DOWN_FROM
    assert result.last_dropped == utc(2026, 3, 2, fire_hours[0] - 1)
    assert result.reason == reason


@pytest.mark.parametrize("policy", [SKIP, COALESCE])
def test_a_year_of_minutes_within_grace_is_leapt_over_not_listed(policy):
    # Every slot is on time: without the limit, half a million runs at once.
    every_minute, now = CronExpression.parse("* * * * *"), utc(2026, 3, 1, 0, 0)
    result = plan(every_minute, ZoneInfo("UTC"), utc(2025, 3, 1), now,
                  policy=policy, grace=400 * 86400, limit=2)  # fmt: skip
    assert result.fire == (utc(2026, 2, 28, 23, 59), now)
    assert result.dropped >= SCAN_LIMIT
    assert result.first_dropped == utc(2025, 3, 1)
    assert result.last_dropped == utc(2026, 2, 28, 23, 58)
    assert result.reason == "beyond the catch-up limit of 2 slots"
    assert result.next_slot == now + MINUTE


def test_nothing_is_due_before_the_next_slot():
    slot = utc(2026, 3, 2, 8, 5)
    result = plan(
        CronExpression.parse("*/5 * * * *"),
        ZoneInfo("UTC"),
        slot,
        slot - SECOND,
        policy=CATCH_UP,
        grace=None,
        limit=5,
    )
    assert result == Plan((), 0, None, None, "", slot)


def test_the_end_is_inclusive_and_ends_the_schedule():
    slot = utc(2026, 3, 2, 8, 5)
    end = utc(2026, 3, 2, 8, 15)
    result = plan(
        CronExpression.parse("*/5 * * * *"),
        ZoneInfo("UTC"),
        slot,
        utc(2026, 3, 2, 9),
        policy=CATCH_UP,
        grace=None,
        limit=5,
        end=end,
    )
    assert result.fire == (slot, utc(2026, 3, 2, 8, 10), end)
    assert result.next_slot is None


# --- errors ------------------------------------------------------------------


def call(**options: object) -> Plan:
    defaults: dict[str, object] = {"policy": SKIP, "grace": 60, "limit": 1}
    defaults.update(options)
    slot = utc(2026, 3, 2, 8, 5)
    expression = CronExpression.parse("*/5 * * * *")
    return plan(expression, ZoneInfo("UTC"), slot, slot, **defaults)


def refused(message: str, **options: object) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        call(**options)
    assert str(caught.value) == message


def test_an_unknown_policy_is_refused_with_the_known_ones():
    refused(
        "Misfire policy 'later' is unknown. Use one of: catch_up, coalesce, skip.",
        policy="later",
    )


@pytest.mark.parametrize("policy", [SKIP, COALESCE])
def test_skip_and_coalesce_need_a_grace_period(policy):
    message = f"Misfire policy {policy!r} needs a grace period in seconds."
    refused(message, policy=policy, grace=None)


def test_catch_up_needs_no_grace_period():
    assert call(policy=CATCH_UP, grace=None).fire == (utc(2026, 3, 2, 8, 5),)


@pytest.mark.parametrize("limit", [0, -3])
def test_a_limit_below_one_is_refused(limit):
    message = f"Catch-up limit {limit} is below 1. Use 1 or more."
    refused(message, policy=CATCH_UP, limit=limit)


def test_a_backlog_bunched_far_from_now_is_leapt_over_not_counted():
    # Every minute of January: 89,280 slots since 2025, all but the last 100 dropped.
    expression, tz = CronExpression.parse("* * * 1 *"), ZoneInfo("Europe/Berlin")
    start, now = utc(2024, 12, 31, 23), utc(2026, 11, 21)
    result = plan(expression, tz, start, now, policy=CATCH_UP, grace=None, limit=100)
    last = utc(2026, 1, 31, 22, 59)  # 23:59 CET
    assert result.fire == tuple(last - MINUTE * n for n in range(99, -1, -1))
    assert result.next_slot == utc(2026, 12, 31, 23)
    assert (result.first_dropped, result.last_dropped) == (start, last - 100 * MINUTE)
    assert SCAN_LIMIT <= result.dropped < 89_280 - 100


def test_coalesce_of_a_long_backlog_that_ended_fires_the_last_slot_before_the_end():
    # The leap over a long backlog must stop at the end, not at the grace cutoff.
    expression, tz = CronExpression.parse("* * * * *"), ZoneInfo("UTC")
    end = utc(2026, 3, 1, 23)
    result = plan(expression, tz, utc(2026, 2, 25), utc(2026, 3, 2), policy=COALESCE,
                  grace=0, limit=1, end=end)  # fmt: skip
    assert result.fire == (end,)
    assert result.last_dropped == end - MINUTE
    assert result.next_slot is None
