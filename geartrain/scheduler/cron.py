"""Cron expressions and the arithmetic of their firing times (stdlib only, no DB).

Syntax
------
Five whitespace-separated fields: minute (0-59), hour (0-23), day-of-month
(1-31), month (1-12 or JAN-DEC) and day-of-week (0-7 or SUN-SAT; 0 and 7 are
Sunday). Names are case-insensitive. A field is a comma-separated list of
items; an item is ``*``, a value ``a``, a range ``a-b``, or a step ``*/n``,
``a-b/n`` or ``a/n`` (from ``a`` to the end of the field, which is Saturday
for day-of-week). ``@yearly``/``@annually`` mean ``0 0 1 1 *``, ``@monthly``
``0 0 1 * *``, ``@weekly`` ``0 0 * * 0``, ``@daily``/``@midnight``
``0 0 * * *`` and ``@hourly`` ``0 * * * *``.

Days follow the Vixie cron rule: when both day-of-month and day-of-week are
restricted, a day matches if *either* field matches; when one of them starts
with ``*`` (including steps such as ``*/2``), a day must match *both*.

Time zones and daylight saving time
-----------------------------------
Slots are wall-clock times in the schedule's time zone; each fires at one
UTC instant:

* A wall time that exists exactly once fires at that instant.
* A wall time in a repeated hour (clocks go back) fires once, at its first
  occurrence (``fold=0``); the second pass through that hour fires nothing.
* A wall time in a skipped hour (clocks go forward) fires once, at the end of
  the gap: the first instant after the change, e.g. 03:00 local time when
  02:00 jumps to 03:00. All skipped slots of a gap, and a 03:00 slot, share
  that instant, and it fires once.

The firing instant is thus a non-decreasing function of the wall time, so
results are always in order and no UTC instant is returned twice.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import MAXYEAR, UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "CronExpression",
    "InvalidCronExpression",
    "InvalidTimeZone",
    "next_fire",
    "slots_between",
    "zone",
]

_MINUTE = timedelta(minutes=1)
_SECOND = timedelta(seconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The Gregorian calendar repeats every 400 years, so a search can stop there.
_SEARCH_YEARS = 401
# The longest each month can be (February in a leap year), indexed by month.
_LONGEST_MONTH = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MACRO_LIST = ", ".join(_MACROS)
_FIELD_LIST = "minute hour day-of-month month day-of-week"
_VALUE_FIELDS = ("minutes", "hours", "days_of_month", "months", "days_of_week")
_ITEM_SHAPE = re.compile(r"(?:\*|\w+(?:-\w+)?)(?:/\w+)?", re.ASCII)
_NUMBER = re.compile(r"[0-9]+")


class InvalidCronExpression(ValueError):
    """A cron expression cannot be parsed, or can never fire."""


class InvalidTimeZone(ValueError):
    """A time zone name is not a known IANA time zone."""


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int  # the highest value accepted
    star_high: int  # where '*' and 'a/n' end
    names: str  # space-separated names for low, low + 1, ...
    hint: str


_MINUTES = _Field("minute", 0, 59, 59, "", "Use a number from 0 to 59.")
_HOURS = _Field("hour", 0, 23, 23, "", "Use a number from 0 to 23.")
_DAYS = _Field("day-of-month", 1, 31, 31, "", "Use a number from 1 to 31.")
_MONTHS = _Field(
    "month",
    1,
    12,
    12,
    "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC",
    "Use a number from 1 to 12 or a name from JAN to DEC.",
)
_WEEKDAYS = _Field(
    "day-of-week",
    0,
    7,
    6,
    "SUN MON TUE WED THU FRI SAT",
    "Use a number from 0 to 7 (0 and 7 both mean Sunday) or a name from SUN to SAT.",
)


@dataclass(frozen=True, slots=True)
class CronExpression:
    """A parsed cron expression; build one with :meth:`CronExpression.parse`.

    Each field holds its selected values in ascending order. ``days_of_week``
    counts from 0 (Sunday) to 6 (Saturday). ``dom_restricted`` and
    ``dow_restricted`` say whether day-of-month and day-of-week do not start
    with ``*``, which decides how the two are combined (see the module docs).
    """

    text: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days_of_month: tuple[int, ...]
    months: tuple[int, ...]
    days_of_week: tuple[int, ...]
    dom_restricted: bool
    dow_restricted: bool

    @classmethod
    def parse(cls, text: str) -> CronExpression:
        """Parse five cron fields or an ``@`` shortcut.

        Raises :class:`InvalidCronExpression` when the text is malformed or
        when the expression can never fire (such as ``0 0 31 2 *``).
        """
        stripped = text.strip()
        if stripped.startswith("@"):
            normalised = stripped.lower()
            if normalised not in _MACROS:
                raise InvalidCronExpression(
                    f"Cron expression {text!r} is not a known shortcut. Use one of "
                    f"{_MACRO_LIST}, or write 5 fields ({_FIELD_LIST})."
                )
            parts = _MACROS[normalised].split()
        else:
            parts = stripped.split()
            normalised = " ".join(parts).upper()
        if len(parts) != 5:
            raise InvalidCronExpression(
                f"Cron expression {text!r} has {len(parts)} fields; a cron "
                f"expression has 5 fields ({_FIELD_LIST}) or is one of {_MACRO_LIST}."
            )
        expression = cls(
            text=normalised,
            minutes=_parse_field(_MINUTES, parts[0]),
            hours=_parse_field(_HOURS, parts[1]),
            days_of_month=_parse_field(_DAYS, parts[2]),
            months=_parse_field(_MONTHS, parts[3]),
            days_of_week=tuple(
                sorted({v % 7 for v in _parse_field(_WEEKDAYS, parts[4])})
            ),
            dom_restricted=not parts[2].startswith("*"),
            dow_restricted=not parts[4].startswith("*"),
        )
        _ensure_fires(expression)
        return expression

    def __str__(self) -> str:
        """Return the normalised text of the expression."""
        return self.text


def _parse_field(field: _Field, text: str) -> tuple[int, ...]:
    """Return the sorted values selected by one field's text."""
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise InvalidCronExpression(
                f"Cron field {field.name!r} has an empty item in {text!r}. "
                "Separate values with single commas, such as '1,2'."
            )
        values.update(_parse_item(field, item))
    return tuple(sorted(values))


def _parse_item(field: _Field, item: str) -> range:
    """Return the values selected by one item: a value, range or step."""
    if not _ITEM_SHAPE.fullmatch(item):
        raise InvalidCronExpression(
            f"Cron field {field.name!r} has item {item!r}, which is not a value, "
            "a range or a step. Write a value such as 5, a range such as 1-5, "
            "or a step such as */15 or 1-30/5."
        )
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not _NUMBER.fullmatch(step_text) or int(step_text) < 1:
            raise InvalidCronExpression(
                f"Cron field {field.name!r} has step {step_text!r}, which is not a "
                "whole number of 1 or more. Use a step such as '*/15'."
            )
        step = int(step_text)
    if base == "*":
        return range(field.low, field.star_high + 1, step)
    first, dash, last = base.partition("-")
    low = _parse_value(field, first)
    if not dash:
        high = max(field.star_high, low) if slash else low
        return range(low, high + 1, step)
    high = _parse_value(field, last)
    if low > high:
        raise InvalidCronExpression(
            f"Cron field {field.name!r} has range {base!r}, which starts after it "
            f"ends. Write the smaller value first, such as '{last}-{first}'."
        )
    return range(low, high + 1, step)


def _parse_value(field: _Field, text: str) -> int:
    """Return the number that a value or a name stands for."""
    if _NUMBER.fullmatch(text):
        value = int(text)
        if not field.low <= value <= field.high:
            raise InvalidCronExpression(
                f"Cron field {field.name!r} has value {text!r}, which is outside "
                f"{field.low}-{field.high}. {field.hint}"
            )
        return value
    names = field.names.split()
    if text.upper() in names:
        return field.low + names.index(text.upper())
    noun = "a number or a name" if names else "a number"
    raise InvalidCronExpression(
        f"Cron field {field.name!r} has value {text!r}, which is not {noun}. "
        f"{field.hint}"
    )


def _ensure_fires(expression: CronExpression) -> None:
    """Raise InvalidCronExpression if no calendar day can ever match."""
    if not all(getattr(expression, name) for name in _VALUE_FIELDS):
        raise InvalidCronExpression(
            f"Cron expression {expression.text!r} never fires, because one of its "
            "fields selects no values. Build expressions with CronExpression.parse()."
        )
    if expression.dom_restricted and expression.dow_restricted:
        return  # every month has every day of the week
    first_day = expression.days_of_month[0]
    if first_day > max(_LONGEST_MONTH[month] for month in expression.months):
        raise InvalidCronExpression(
            f"Cron expression {expression.text!r} never fires, because none of its "
            f"months has a day {first_day}. Choose a day-of-month that exists in "
            "the selected months."
        )


def zone(name: str) -> ZoneInfo:
    """Return the IANA time zone called ``name``.

    Raises :class:`InvalidTimeZone` if there is no such zone.
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError, TypeError):
        raise InvalidTimeZone(
            f"Time zone {name!r} is not a known IANA time zone. "
            "Use a name such as 'Europe/Paris' or 'UTC'."
        ) from None


def next_fire(expression: CronExpression, after: datetime, tz: ZoneInfo) -> datetime:
    """Return the first firing instant strictly after ``after``, in UTC.

    ``after`` must be aware and may be in any zone; the expression is read as
    wall-clock times in ``tz``, following the DST rules of the module docs.
    """
    _require_aware(after, "after")
    _ensure_fires(expression)
    instant = next(_instants(expression, after, tz), None)
    if instant is None:
        raise OverflowError(
            f"Cron expression {expression.text!r} has no slot after "
            f"{after.isoformat()} before the year {MAXYEAR + 1}."
        )
    return instant


def slots_between(
    expression: CronExpression,
    start: datetime,
    end: datetime,
    tz: ZoneInfo,
    limit: int | None = None,
) -> list[datetime]:
    """Return the firing instants ``s`` with ``start < s <= end``, in UTC.

    The instants are in increasing order; at most ``limit`` are returned when
    ``limit`` is given. ``start`` and ``end`` must be aware.
    """
    _require_aware(start, "start")
    _require_aware(end, "end")
    if limit is not None and limit < 0:
        raise ValueError(f"limit is {limit!r}; use None or a number of 0 or more.")
    _ensure_fires(expression)
    slots: list[datetime] = []
    if limit == 0 or end <= start:
        return slots
    for instant in _instants(expression, start, tz):
        if instant > end:
            break
        slots.append(instant)
        if len(slots) == limit:
            break
    return slots


def _require_aware(value: datetime, name: str) -> None:
    """Raise ValueError unless ``value`` is an aware datetime."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{name} is {value!r}, a naive datetime, so its instant is unknown. "
            "Pass an aware datetime, such as one with tzinfo=datetime.UTC."
        )


def _instants(
    expression: CronExpression, after: datetime, tz: ZoneInfo
) -> Iterator[datetime]:
    """Yield distinct firing instants later than ``after``, in increasing order."""
    wall = after.astimezone(tz).replace(tzinfo=None, second=0, microsecond=0, fold=0)
    last = after
    for slot in _wall_slots(expression, wall + _MINUTE):
        instant = _resolve(slot, tz)
        if instant > last:  # drops a repeated hour's second pass and shared gap ends
            last = instant
            yield instant


def _wall_slots(expression: CronExpression, start: datetime) -> Iterator[datetime]:
    """Yield the naive wall-clock slots at or after ``start``, in order."""
    first_day = (start.year, start.month, start.day)
    for year in range(start.year, min(start.year + _SEARCH_YEARS, MAXYEAR + 1)):
        for month in expression.months:
            if (year, month) < first_day[:2]:
                continue
            for day in _matching_days(expression, year, month):
                today = (year, month, day)
                if today < first_day:
                    continue
                for hour in expression.hours:
                    if today == first_day and hour < start.hour:
                        continue
                    for minute in expression.minutes:
                        slot = datetime(year, month, day, hour, minute)
                        if slot >= start:
                            yield slot


def _matching_days(expression: CronExpression, year: int, month: int) -> list[int]:
    """Return the days of a month that the day fields select."""
    monday_based, length = calendar.monthrange(year, month)
    first_weekday = (monday_based + 1) % 7  # cron counts from Sunday = 0
    either = expression.dom_restricted and expression.dow_restricted
    days = []
    for day in range(1, length + 1):
        by_date = day in expression.days_of_month
        by_weekday = (first_weekday + day - 1) % 7 in expression.days_of_week
        if (by_date or by_weekday) if either else (by_date and by_weekday):
            days.append(day)
    return days


def _resolve(wall: datetime, tz: ZoneInfo) -> datetime:
    """Return the UTC instant at which a naive wall-clock slot fires."""
    instant = wall.replace(tzinfo=tz).astimezone(UTC)  # fold=0: first occurrence
    if instant.astimezone(tz).replace(tzinfo=None) == wall:
        return instant
    return _gap_end(wall, tz)


def _gap_end(wall: datetime, tz: ZoneInfo) -> datetime:
    """Return the first instant after the skipped interval that holds ``wall``."""
    # In a gap, fold=1 reads the wall time with the offset after the change,
    # which gives an instant before it; fold=0 gives one at or after it.
    before = (wall.replace(tzinfo=tz, fold=1) - _EPOCH) // _SECOND
    after = (wall.replace(tzinfo=tz, fold=0) - _EPOCH) // _SECOND
    while after - before > 1:
        middle = (before + after) // 2
        moment = _EPOCH + timedelta(seconds=middle)
        if moment.astimezone(tz).replace(tzinfo=None) > wall:
            after = middle
        else:
            before = middle
    return _EPOCH + timedelta(seconds=after)
