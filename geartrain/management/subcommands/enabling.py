"""``geartrain enable|disable|toggle SCHEDULE…``.

Every name is looked up before anything changes: one unknown name changes nothing.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from geartrain.management.subcommands.schedules import utc
from geartrain.models import Schedule
from geartrain.scheduler import api

WANTED = {"enable": True, "disable": False, "toggle": None}
DONE = {"enable": "Enabled", "disable": "Disabled", "toggle": "Toggled"}


def add_arguments(parser: Any) -> None:
    parser.add_argument(
        "schedules", nargs="+", metavar="SCHEDULE", help="Schedule names (or ids)."
    )


def _describe(schedule: Schedule, was: bool) -> str:
    name = schedule.name
    if schedule.enabled == was:
        state = "enabled" if was else "disabled"
        return f"Schedule {name!r} was already {state}."
    if not schedule.enabled:
        return f"Schedule {name!r} disabled."
    if schedule.next_slot is None:
        return f"Schedule {name!r} enabled; it has ended (no slot after its end)."
    return f"Schedule {name!r} enabled; next slot {utc(schedule.next_slot)} UTC."


def handle(command: BaseCommand, options: dict[str, Any]) -> int:
    action = options["subcommand"]
    keys = list(dict.fromkeys(options["schedules"]))
    try:
        schedules = list({s.pk: s for s in map(api.get, keys)}.values())
    except api.ScheduleNotFound as exc:
        raise CommandError(f"{exc} Nothing was changed.") from exc
    before = [s.enabled for s in schedules]
    changed = api.set_enabled(schedules, WANTED[action])
    for schedule, was in zip(schedules, before, strict=True):
        command.stdout.write(_describe(schedule, was))
    command.stdout.write(f"{DONE[action]} {changed} schedule(s).")
    return 0
