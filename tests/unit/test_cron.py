"""Tests for geartrain.scheduler.cron: parsing, errors, DST rules and properties.

The property tests compare the module against ``brute_force``, an independent
evaluator that walks UTC minute by minute and applies the documented rules:
a wall time fires at its first occurrence (fold=0), and wall times skipped by
a spring-forward gap fire at the first instant after the gap.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geartrain.scheduler.cron import (
    CronExpression,
    InvalidCronExpression,
    InvalidTimeZone,
    next_fire,
    slots_between,
    zone,
)

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
NEW_YORK = ZoneInfo("America/New_York")
UTC_ZONE = ZoneInfo("UTC")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# --- parsing -----------------------------------------------------------------


def test_parse_fields_lists_ranges_steps_and_names():
    expr = CronExpression.parse("*/15 0-6/2 1,15 JAN-mar mon-FRI")
    assert expr.minutes == (0, 15, 30, 45)
    assert expr.hours == (0, 2, 4, 6)
    assert expr.days_of_month == (1, 15)
    assert expr.months == (1, 2, 3)
    assert expr.days_of_week == (1, 2, 3, 4, 5)
    assert expr.dom_restricted
    assert expr.dow_restricted
    assert expr.text == "*/15 0-6/2 1,15 JAN-MAR MON-FRI"


def test_parse_start_with_step_runs_to_end_of_field():
    assert CronExpression.parse("5/20 * * * *").minutes == (5, 25, 45)
    assert CronExpression.parse("* * * * 1/2").days_of_week == (1, 3, 5)
    assert CronExpression.parse("* * * 10/2 *").months == (10, 12)


def test_parse_star_covers_field():
    expr = CronExpression.parse("* * * * *")
    assert expr.minutes == tuple(range(60))
    assert expr.hours == tuple(range(24))
    assert expr.days_of_month == tuple(range(1, 32))
    assert expr.months == tuple(range(1, 13))
    assert expr.days_of_week == tuple(range(7))
    assert not expr.dom_restricted
    assert not expr.dow_restricted


def test_sunday_is_0_and_7():
    assert CronExpression.parse("0 0 * * 7").days_of_week == (0,)
    assert CronExpression.parse("0 0 * * 5-7").days_of_week == (0, 5, 6)
    assert CronExpression.parse("0 0 * * sun").days_of_week == (0,)


def test_star_step_counts_as_unrestricted_day_field():
    expr = CronExpression.parse("0 0 */10 * MON")
    assert expr.days_of_month == (1, 11, 21, 31)
    assert not expr.dom_restricted
    assert expr.dow_restricted


def test_text_is_normalised_and_is_str():
    expr = CronExpression.parse("  0   9 * *\t* ")
    assert expr.text == "0 9 * * *"
    assert str(expr) == "0 9 * * *"
    assert expr == CronExpression.parse("0 9 * * *")
    assert hash(expr) == hash(CronExpression.parse("0 9 * * *"))


@pytest.mark.parametrize(
    ("shortcut", "fields"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
    ],
)
def test_shortcuts(shortcut, fields):
    expr = CronExpression.parse(shortcut.upper())
    assert expr.text == shortcut
    assert dataclasses.replace(expr, text=fields) == CronExpression.parse(fields)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "* * *",
            "Cron expression '* * *' has 3 fields; a cron expression has 5 fields "
            "(minute hour day-of-month month day-of-week) or is one of @yearly, "
            "@annually, @monthly, @weekly, @daily, @midnight, @hourly.",
        ),
        (
            "",
            "Cron expression '' has 0 fields; a cron expression has 5 fields "
            "(minute hour day-of-month month day-of-week) or is one of @yearly, "
            "@annually, @monthly, @weekly, @daily, @midnight, @hourly.",
        ),
        (
            "@fortnightly",
            "Cron expression '@fortnightly' is not a known shortcut. Use one of "
            "@yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly, "
            "or write 5 fields (minute hour day-of-month month day-of-week).",
        ),
        (
            "60 * * * *",
            "Cron field 'minute' has value '60', which is outside 0-59. "
            "Use a number from 0 to 59.",
        ),
        (
            "0 25 * * *",
            "Cron field 'hour' has value '25', which is outside 0-23. "
            "Use a number from 0 to 23.",
        ),
        (
            "0 0 0 * *",
            "Cron field 'day-of-month' has value '0', which is outside 1-31. "
            "Use a number from 1 to 31.",
        ),
        (
            "0 0 * 13 *",
            "Cron field 'month' has value '13', which is outside 1-12. "
            "Use a number from 1 to 12 or a name from JAN to DEC.",
        ),
        (
            "0 0 * Foo *",
            "Cron field 'month' has value 'Foo', which is not a number or a name. "
            "Use a number from 1 to 12 or a name from JAN to DEC.",
        ),
        (
            "0 0 * * 8",
            "Cron field 'day-of-week' has value '8', which is outside 0-7. "
            "Use a number from 0 to 7 (0 and 7 both mean Sunday) or a name from "
            "SUN to SAT.",
        ),
        (
            "x * * * *",
            "Cron field 'minute' has value 'x', which is not a number. "
            "Use a number from 0 to 59.",
        ),
        (
            "*/0 * * * *",
            "Cron field 'minute' has step '0', which is not a whole number of 1 or "
            "more. Use a step such as '*/15'.",
        ),
        (
            "0 5-2 * * *",
            "Cron field 'hour' has range '5-2', which starts after it ends. "
            "Write the smaller value first, such as '2-5'.",
        ),
        (
            "1,,2 * * * *",
            "Cron field 'minute' has an empty item in '1,,2'. "
            "Separate values with single commas, such as '1,2'.",
        ),
        (
            "1-2-3 * * * *",
            "Cron field 'minute' has item '1-2-3', which is not a value, a range or "
            "a step. Write a value such as 5, a range such as 1-5, or a step such "
            "as */15 or 1-30/5.",
        ),
        (
            "0 0 31 2 *",
            "Cron expression '0 0 31 2 *' never fires, because none of its months "
            "has a day 31. Choose a day-of-month that exists in the selected months.",
        ),
        (
            "0 0 30,31 2 *",
            "Cron expression '0 0 30,31 2 *' never fires, because none of its months "
            "has a day 30. Choose a day-of-month that exists in the selected months.",
        ),
    ],
)
def test_parse_errors_word_for_word(text, message):
    with pytest.raises(InvalidCronExpression) as caught:
        CronExpression.parse(text)
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)


def test_impossible_day_is_possible_via_day_of_week():
    # Both day fields restricted: the 31st of February OR any Monday.
    expr = CronExpression.parse("0 0 31 2 MON")
    assert next_fire(expr, utc(2026, 1, 1), UTC_ZONE) == utc(2026, 2, 2)


def test_next_fire_refuses_an_expression_that_never_fires():
    impossible = dataclasses.replace(
        CronExpression.parse("0 0 31 1 *"), text="0 0 31 2 *", months=(2,)
    )
    with pytest.raises(InvalidCronExpression, match="never fires"):
        next_fire(impossible, utc(2026, 1, 1), UTC_ZONE)
    with pytest.raises(InvalidCronExpression, match="never fires"):
        slots_between(impossible, utc(2026, 1, 1), utc(2027, 1, 1), UTC_ZONE)


def test_next_fire_refuses_an_expression_with_an_empty_field():
    empty = dataclasses.replace(CronExpression.parse("0 0 * * *"), minutes=())
    with pytest.raises(InvalidCronExpression) as caught:
        next_fire(empty, utc(2026, 1, 1), UTC_ZONE)
    assert str(caught.value) == (
        "Cron expression '0 0 * * *' never fires, because one of its fields "
        "selects no values. Build expressions with CronExpression.parse()."
    )


def test_next_fire_past_the_last_representable_year():
    expr = CronExpression.parse("@yearly")
    with pytest.raises(OverflowError, match="before the year 10000"):
        next_fire(expr, utc(9999, 6, 1), UTC_ZONE)


# --- time zones --------------------------------------------------------------


def test_zone_returns_zoneinfo():
    assert zone("Europe/Paris") == ZoneInfo("Europe/Paris")
    assert zone("UTC").key == "UTC"


@pytest.mark.parametrize(
    "name", ["Mars/Base", "", "../etc/passwd", "/etc/passwd", "America", "UTC "]
)
def test_zone_rejects_unknown_names(name):
    with pytest.raises(InvalidTimeZone) as caught:
        zone(name)
    assert str(caught.value) == (
        f"Time zone {name!r} is not a known IANA time zone. "
        "Use a name such as 'Europe/Paris' or 'UTC'."
    )
    assert isinstance(caught.value, ValueError)


# --- arithmetic --------------------------------------------------------------


def test_new_york_nine_am_in_summer_and_winter():
    expr = CronExpression.parse("0 9 * * *")
    assert next_fire(expr, utc(2026, 7, 1), NEW_YORK) == utc(2026, 7, 1, 13)
    assert next_fire(expr, utc(2026, 1, 15), NEW_YORK) == utc(2026, 1, 15, 14)


def test_next_fire_is_strictly_after_and_accepts_any_zone():
    expr = CronExpression.parse("0 9 * * *")
    at_slot = datetime(2026, 7, 1, 9, tzinfo=NEW_YORK)
    assert next_fire(expr, at_slot, NEW_YORK) == utc(2026, 7, 2, 13)
    paris = at_slot.astimezone(ZoneInfo("Europe/Paris"))
    assert next_fire(expr, paris - MINUTE, NEW_YORK) == utc(2026, 7, 1, 13)
    result = next_fire(expr, paris, NEW_YORK)
    assert result.tzinfo is UTC


def test_vixie_day_rule_either_when_both_restricted():
    expr = CronExpression.parse("0 0 10 * MON")
    days = [
        s.day for s in slots_between(expr, utc(2026, 5, 31), utc(2026, 6, 30), UTC_ZONE)
    ]
    assert days == [1, 8, 10, 15, 22, 29]


def test_vixie_day_rule_both_when_one_starts_with_star():
    expr = CronExpression.parse("0 0 */10 * MON")
    slots = slots_between(expr, utc(2026, 5, 31), utc(2026, 7, 31), UTC_ZONE)
    assert slots == [utc(2026, 6, 1)]


def test_rare_expressions_are_found_quickly():
    leap_day = CronExpression.parse("0 0 29 2 *")
    assert next_fire(leap_day, utc(2097, 1, 1), NEW_YORK) == utc(2104, 2, 29, 5)
    leap_sunday = CronExpression.parse("0 0 29 2 */7")  # '*' start: day AND weekday
    assert next_fire(leap_sunday, utc(2005, 1, 1), UTC_ZONE) == utc(2032, 2, 29)


def test_slots_between_bounds_and_limit():
    expr = CronExpression.parse("0 * * * *")
    start, end = utc(2026, 1, 1), utc(2026, 1, 1, 5)
    hours = [utc(2026, 1, 1, h) for h in range(1, 6)]
    assert slots_between(expr, start, end, UTC_ZONE) == hours
    assert slots_between(expr, start, end, UTC_ZONE, limit=2) == hours[:2]
    assert slots_between(expr, start, end, UTC_ZONE, limit=0) == []
    assert slots_between(expr, end, start, UTC_ZONE) == []
    with pytest.raises(ValueError, match="limit is -1"):
        slots_between(expr, start, end, UTC_ZONE, limit=-1)


def test_naive_datetimes_are_refused():
    expr = CronExpression.parse("0 * * * *")
    with pytest.raises(ValueError, match="naive datetime"):
        next_fire(expr, datetime(2026, 1, 1), UTC_ZONE)
    with pytest.raises(ValueError, match="naive datetime"):
        slots_between(expr, utc(2026, 1, 1), datetime(2026, 1, 2), UTC_ZONE)


# --- daylight saving time ----------------------------------------------------

DST_CASES = [
    # New York, 2026-03-08: 02:00 EST -> 03:00 EDT. 02:30 fires at 03:00 EDT.
    ("America/New_York", "30 2 * * *", utc(2026, 3, 6, 12), utc(2026, 3, 10),
     [utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7), utc(2026, 3, 9, 6, 30)]),
    ("America/New_York", "*/30 * * * *",
     utc(2026, 3, 8, 5, 45), utc(2026, 3, 8, 7, 45),
     [utc(2026, 3, 8, 6), utc(2026, 3, 8, 6, 30), utc(2026, 3, 8, 7),
      utc(2026, 3, 8, 7, 30)]),
    # New York, 2026-11-01: 02:00 EDT -> 01:00 EST. 01:30 fires once, in EDT.
    ("America/New_York", "30 1 * * *", utc(2026, 10, 31), utc(2026, 11, 3),
     [utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]),
    ("America/New_York", "*/30 * * * *",
     utc(2026, 11, 1, 4, 15), utc(2026, 11, 1, 7, 10),
     [utc(2026, 11, 1, 4, 30), utc(2026, 11, 1, 5), utc(2026, 11, 1, 5, 30),
      utc(2026, 11, 1, 7)]),
    # London, 2026-03-29: 01:00 GMT -> 02:00 BST; 2026-10-25: 02:00 BST -> 01:00 GMT.
    ("Europe/London", "30 1 * * *", utc(2026, 3, 27, 12), utc(2026, 3, 30, 12),
     [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1), utc(2026, 3, 30, 0, 30)]),
    ("Europe/London", "30 1 * * *", utc(2026, 10, 23, 12), utc(2026, 10, 26, 12),
     [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]),
    # Sydney, 2026-04-05: 03:00 AEDT -> 02:00 AEST (repeated);
    # 2026-10-04: 02:00 AEST -> 03:00 AEDT (skipped).
    ("Australia/Sydney", "30 2 * * *", utc(2026, 4, 3), utc(2026, 4, 6),
     [utc(2026, 4, 3, 15, 30), utc(2026, 4, 4, 15, 30), utc(2026, 4, 5, 16, 30)]),
    ("Australia/Sydney", "30 2 * * *", utc(2026, 10, 2), utc(2026, 10, 5),
     [utc(2026, 10, 2, 16, 30), utc(2026, 10, 3, 16), utc(2026, 10, 4, 15, 30)]),
    # Lord Howe shifts by 30 minutes. 2026-04-05: 02:00 +11 -> 01:30 +10:30;
    # 2026-10-04: 02:00 +10:30 -> 02:30 +11.
    ("Australia/Lord_Howe", "45 1 * * *", utc(2026, 4, 3), utc(2026, 4, 6),
     [utc(2026, 4, 3, 14, 45), utc(2026, 4, 4, 14, 45), utc(2026, 4, 5, 15, 15)]),
    ("Australia/Lord_Howe", "*/15 * * * *",
     utc(2026, 4, 4, 14, 20), utc(2026, 4, 4, 15, 40),
     [utc(2026, 4, 4, 14, 30), utc(2026, 4, 4, 14, 45), utc(2026, 4, 4, 15, 30)]),
    ("Australia/Lord_Howe", "15 2 * * *", utc(2026, 10, 2), utc(2026, 10, 5),
     [utc(2026, 10, 2, 15, 45), utc(2026, 10, 3, 15, 30), utc(2026, 10, 4, 15, 15)]),
    ("Australia/Lord_Howe", "*/15 * * * *",
     utc(2026, 10, 3, 15, 10), utc(2026, 10, 3, 15, 50),
     [utc(2026, 10, 3, 15, 15), utc(2026, 10, 3, 15, 30), utc(2026, 10, 3, 15, 45)]),
    # Sao Paulo, 2018-11-04: midnight -> 01:00, so midnight fires at 01:00.
    ("America/Sao_Paulo", "0 0 * * *", utc(2018, 11, 2, 12), utc(2018, 11, 5, 12),
     [utc(2018, 11, 3, 3), utc(2018, 11, 4, 3), utc(2018, 11, 5, 2)]),
    # Apia skipped 2011-12-30 entirely (-10 -> +14); its noon fires at the gap end.
    ("Pacific/Apia", "0 12 * * *", utc(2011, 12, 29), utc(2011, 12, 31),
     [utc(2011, 12, 29, 22), utc(2011, 12, 30, 10), utc(2011, 12, 30, 22)]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "text", "start", "end", "expected"), DST_CASES)
def test_dst_examples(name, text, start, end, expected):
    expr, tz = CronExpression.parse(text), ZoneInfo(name)
    assert slots_between(expr, start, end, tz) == expected
    assert next_fire(expr, start, tz) == expected[0]
    for earlier, later in itertools.pairwise(expected):
        assert next_fire(expr, earlier, tz) == later
    assert brute_force(spec_of(text), start, end, tz) == expected


def test_next_fire_from_second_pass_of_repeated_hour():
    expr = CronExpression.parse("*/15 * * * *")
    first_pass = utc(2026, 11, 1, 5, 40)  # 01:40 EDT
    second_pass = utc(2026, 11, 1, 6, 10)  # 01:10 EST
    assert next_fire(expr, first_pass, NEW_YORK) == utc(2026, 11, 1, 5, 45)
    assert next_fire(expr, second_pass, NEW_YORK) == utc(2026, 11, 1, 7)


# --- brute force -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Spec:
    """An expression's text with the values it should select, built by hand."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    day_star: bool
    weekday_star: bool

    def matches(self, wall: datetime) -> bool:
        by_day = wall.day in self.days
        by_weekday = wall.isoweekday() % 7 in self.weekdays
        if self.day_star or self.weekday_star:
            day_ok = by_day and by_weekday
        else:
            day_ok = by_day or by_weekday
        return (
            wall.minute in self.minutes
            and wall.hour in self.hours
            and wall.month in self.months
            and day_ok
        )


def spec_of(text: str) -> Spec:
    """A Spec for simple texts made of numbers, '*', ',' and '*/n' only."""

    def values(field: str, low: int, high: int) -> frozenset[int]:
        if field == "*":
            return frozenset(range(low, high + 1))
        if field.startswith("*/"):
            return frozenset(range(low, high + 1, int(field[2:])))
        return frozenset(int(v) for v in field.split(","))

    minute, hour, day, month, weekday = text.split()
    return Spec(
        text,
        values(minute, 0, 59),
        values(hour, 0, 23),
        values(day, 1, 31),
        values(month, 1, 12),
        frozenset(v % 7 for v in values(weekday, 0, 6)),
        day.startswith("*"),
        weekday.startswith("*"),
    )


def fires_at(spec: Spec, moment: datetime, tz: ZoneInfo) -> bool:
    """Whether the whole UTC minute ``moment`` is a firing instant."""
    local = moment.astimezone(tz)
    wall = local.replace(tzinfo=None)
    if local.fold == 0 and spec.matches(wall):
        return True
    # Wall times the clock jumped over since the previous minute fire here.
    skipped = (moment - MINUTE).astimezone(tz).replace(tzinfo=None) + MINUTE
    while skipped < wall:
        if spec.matches(skipped):
            return True
        skipped += MINUTE
    return False


def brute_force(
    spec: Spec, start: datetime, end: datetime, tz: ZoneInfo
) -> list[datetime]:
    """Every firing instant in (start, end], found minute by minute in UTC."""
    moment = start.astimezone(UTC).replace(second=0, microsecond=0) + MINUTE
    found = []
    while moment <= end:
        if fires_at(spec, moment, tz):
            found.append(moment)
        moment += MINUTE
    return found


# --- strategies --------------------------------------------------------------

ZONES = [
    "UTC",
    "America/New_York",
    "Europe/London",
    "Europe/Dublin",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "America/St_Johns",
    "Pacific/Chatham",
    "America/Sao_Paulo",
    "America/Santiago",
    "Asia/Beirut",
    "Pacific/Apia",
]
DST_ZONES = [name for name in ZONES if name not in ("UTC", "Asia/Kathmandu")]
FIRST_YEAR, LAST_YEAR = 1995, 2045
LONGEST = {2: 29, 4: 30, 6: 30, 9: 30, 11: 30}  # other months have 31 days


@functools.cache
def transitions(name: str, year: int) -> tuple[datetime, ...]:
    """The whole UTC minutes at which ``name`` changes its offset in ``year``."""
    tz = ZoneInfo(name)

    def offset(moment: datetime) -> timedelta | None:
        return moment.astimezone(tz).utcoffset()

    found = []
    for n in range(366):
        moment = utc(year, 1, 1) + timedelta(days=n)
        before = offset(moment)
        if before != offset(moment + timedelta(days=1)):
            while offset(moment + HOUR) == before:
                moment += HOUR
            while offset(moment) == before:
                moment += MINUTE
            found.append(moment)
    return tuple(found)


@st.composite
def instants(draw: st.DrawFn, name: str, near_change: bool) -> datetime:
    """An aware instant; with ``near_change``, a few hours before a DST change."""
    year = draw(st.integers(FIRST_YEAR, LAST_YEAR))
    changes: tuple[datetime, ...] = ()
    while near_change and not changes and year >= FIRST_YEAR:
        changes, year = transitions(name, year), year - 1
    if changes:
        seconds = draw(st.integers(-8 * 3600, 2 * 3600))
        moment = draw(st.sampled_from(changes)) + timedelta(seconds=seconds)
    else:
        seconds = draw(st.integers(0, 365 * 86400))
        moment = utc(year, 1, 1) + timedelta(seconds=seconds)
    if draw(st.booleans()):
        moment = moment.replace(second=0)
    shown_in = draw(st.sampled_from(["UTC", name, "Asia/Tokyo"]))
    return moment.astimezone(ZoneInfo(shown_in))


@st.composite
def field(
    draw: st.DrawFn, low: int, high: int, star_high: int, names: str = ""
) -> tuple[str, frozenset[int]]:
    """One cron field as (text, selected values), built independently."""
    if draw(st.integers(0, 3)) == 0:
        return "*", frozenset(range(low, star_high + 1))

    def show(value: int) -> str:
        named = names and value - low < len(names.split()) and draw(st.booleans())
        return names.split()[value - low].lower() if named else str(value)

    texts, selected = [], set()
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["value", "range", "star/n", "range/n", "a/n"]))
        a, b = sorted(draw(st.lists(st.integers(low, high), min_size=2, max_size=2)))
        step = draw(st.integers(1, star_high - low + 2))
        if kind == "value":
            texts.append(show(a))
            selected.add(a)
        elif kind == "range":
            texts.append(f"{show(a)}-{show(b)}")
            selected.update(range(a, b + 1))
        elif kind == "star/n":
            texts.append(f"*/{step}")
            selected.update(range(low, star_high + 1, step))
        elif kind == "range/n":
            texts.append(f"{show(a)}-{show(b)}/{step}")
            selected.update(range(a, b + 1, step))
        else:
            a = min(a, star_high)
            texts.append(f"{show(a)}/{step}")
            selected.update(range(a, star_high + 1, step))
    return ",".join(texts), frozenset(selected)


@st.composite
def specs(draw: st.DrawFn, dense: bool) -> Spec:
    """A random expression; ``dense`` ones mostly fire within a few days."""
    minute = draw(field(0, 59, 59))
    hour = draw(field(0, 23, 23))
    day = draw(field(1, 31, 31))
    month = draw(field(1, 12, 12, "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC"))
    weekday = draw(field(0, 7, 6, "SUN MON TUE WED THU FRI SAT"))
    if dense and draw(st.booleans()):
        hour = ("*", frozenset(range(24)))
    if dense and draw(st.booleans()):
        weekday = ("*", frozenset(range(7)))
    if dense and draw(st.integers(0, 3)) > 0:
        month = ("*", frozenset(range(1, 13)))
    if dense and draw(st.integers(0, 3)) > 0:
        day = ("*", frozenset(range(1, 32)))
    either = not day[0].startswith("*") and not weekday[0].startswith("*")
    if not either and min(day[1]) > max(LONGEST.get(m, 31) for m in month[1]):
        day = ("1", frozenset({1}))  # never fires; that case is tested separately
    return Spec(
        " ".join((minute[0], hour[0], day[0], month[0], weekday[0])),
        minute[1],
        hour[1],
        day[1],
        month[1],
        frozenset(v % 7 for v in weekday[1]),
        day[0].startswith("*"),
        weekday[0].startswith("*"),
    )


@st.composite
def cases(
    draw: st.DrawFn, dense: bool, near_change: bool = False
) -> tuple[Spec, ZoneInfo, datetime]:
    """A random expression, zone and start instant."""
    name = draw(st.sampled_from(DST_ZONES if near_change else ZONES))
    return draw(specs(dense)), ZoneInfo(name), draw(instants(name, near_change))


# --- properties --------------------------------------------------------------

PROPERTY = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@PROPERTY
@given(spec=specs(dense=False))
def test_parse_matches_independent_field_sets(spec):
    expr = CronExpression.parse(spec.text)
    assert expr.text == spec.text.upper()
    assert set(expr.minutes) == spec.minutes
    assert set(expr.hours) == spec.hours
    assert set(expr.days_of_month) == spec.days
    assert set(expr.months) == spec.months
    assert set(expr.days_of_week) == spec.weekdays
    assert expr.dom_restricted is not spec.day_star
    assert expr.dow_restricted is not spec.weekday_star


def check_against_brute_force(spec, tz, start, end, limit):
    expr = CronExpression.parse(spec.text)
    expected = brute_force(spec, start, end, tz)
    assert slots_between(expr, start, end, tz) == expected
    assert slots_between(expr, start, end, tz, limit=limit) == expected[:limit]
    following = next_fire(expr, start, tz)
    if expected:
        assert following == expected[0]
    else:
        assert following > end


@PROPERTY
@given(case=cases(dense=True), hours=st.integers(1, 72), limit=st.integers(1, 5))
def test_matches_brute_force(case, hours, limit):
    spec, tz, start = case
    end = start + timedelta(hours=hours, seconds=17)
    check_against_brute_force(spec, tz, start, end, limit)


@settings(PROPERTY, max_examples=300)
@given(
    case=cases(dense=True, near_change=True),
    minutes=st.integers(1, 12 * 60),
    limit=st.integers(1, 5),
)
def test_matches_brute_force_across_clock_changes(case, minutes, limit):
    spec, tz, start = case
    end = start + timedelta(minutes=minutes)
    check_against_brute_force(spec, tz, start, end, limit)


@PROPERTY
@given(case=cases(dense=False))
def test_chained_results_are_ordered_sound_and_consistent(case):
    spec, tz, start = case
    expr = CronExpression.parse(spec.text)
    chain = [next_fire(expr, start, tz)]
    for _ in range(8):
        chain.append(next_fire(expr, chain[-1], tz))
    assert chain[0] > start
    assert all(a < b for a, b in itertools.pairwise(chain))
    for moment in chain:
        assert moment.tzinfo is UTC
        assert moment.second == moment.microsecond == 0
        assert fires_at(spec, moment, tz)
    assert slots_between(expr, start, chain[-1], tz) == chain
    assert slots_between(expr, chain[2], chain[-1], tz) == chain[3:]
