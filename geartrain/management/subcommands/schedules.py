"""``geartrain schedules``: every schedule, its timing and its bookkeeping."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand

from geartrain.conf import get_settings
from geartrain.models import Schedule

TIME = "%Y-%m-%d %H:%M:%S"
COLUMNS = (
    "name",
    "cron",
    "time zone",
    "target",
    "enabled",
    "next slot",
    "last slot",
    "runs",
    "held because",
)


def utc(value: datetime | None) -> str:
    """``2026-03-02 08:00:00`` in UTC, or ``-``."""
    return "-" if value is None else f"{value.astimezone(UTC):{TIME}}"


def add_arguments(parser: Any) -> None:
    """``schedules`` takes no options."""


def _row(schedule: Schedule) -> tuple[str, ...]:
    return (
        schedule.name,
        schedule.cron,
        schedule.timezone,
        schedule.target_label,
        "yes" if schedule.enabled else "no",
        utc(schedule.next_slot),
        utc(schedule.last_slot),
        str(schedule.total_runs),
        schedule.held_reason,
    )


def handle(command: BaseCommand, options: dict[str, Any]) -> int:
    schedules = Schedule.objects.using(get_settings().DATABASE).select_related(
        "pipeline"
    )
    rows = [_row(schedule) for schedule in schedules.order_by("name")]
    out = command.stdout
    if not rows:
        out.write("No schedules.")
        return 0
    out.write(f"Schedules: {len(rows)} (times in UTC)")
    widths = [max(len(r[i]) for r in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    runs = COLUMNS.index("runs")
    for row in [COLUMNS, *rows]:
        cells = [
            cell.rjust(width) if i == runs else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        out.write(("  " + "  ".join(cells)).rstrip())
    return 0
