"""``geartrain backfill SCHEDULE --from ISO --to ISO``: fire past slots again.

A time without an offset is read in the schedule's time zone. Slots that already fired
(or were skipped) are reported and left alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from geartrain.management.subcommands.launch import os_user
from geartrain.management.subcommands.run_now import started
from geartrain.management.subcommands.schedules import utc
from geartrain.models import FireStatus, Schedule
from geartrain.scheduler import api


def add_arguments(parser: Any) -> None:
    parser.add_argument("schedule", help="The schedule's name (or id).")
    parser.add_argument(
        "--from",
        dest="start",
        required=True,
        metavar="ISO",
        help="First instant, ISO 8601 (no offset: the schedule's time zone).",
    )
    parser.add_argument(
        "--to",
        dest="end",
        required=True,
        metavar="ISO",
        help="Last instant, ISO 8601, at or before now.",
    )


def instant(text: str, option: str, schedule: Schedule) -> datetime:
    """Parse ``text``; without an offset it is a wall time in the schedule's zone."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CommandError(
            f"{option} {text!r} is not an ISO 8601 date and time. Write it like "
            f"2026-03-01T08:00 (read in the schedule's time zone, "
            f"{schedule.timezone}) or with an offset, like 2026-03-01T08:00+00:00."
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=schedule.zone())
    return value


def handle(command: BaseCommand, options: dict[str, Any]) -> int:
    try:
        schedule = api.get(options["schedule"])
    except api.ScheduleNotFound as exc:
        raise CommandError(str(exc)) from exc
    start = instant(options["start"], "--from", schedule)
    end = instant(options["end"], "--to", schedule)
    try:
        report = api.backfill(schedule, start, end, launched_by=os_user())
    except api.InvalidBackfill as exc:
        raise CommandError(str(exc)) from exc
    out = command.stdout
    out.write(
        f"Backfill of schedule {schedule.name!r} from {utc(start)} to {utc(end)} "
        f"UTC: {len(report.fired)} slot(s) fired, {len(report.already)} already "
        f"handled."
    )
    lines = [(slot, "already handled") for slot in report.already]
    for fire in report.fired:
        slot = fire.slot or start  # backfill fires always have a slot
        if fire.status == FireStatus.SKIPPED:
            lines.append((slot, f"skipped: {fire.reason}"))
        else:
            lines.append((slot, f"fired: {started(fire)}"))
    for slot, what in sorted(lines, key=lambda line: line[0]):
        out.write(f"  {utc(slot)} {what}")
    return 0
