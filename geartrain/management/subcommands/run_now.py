"""``geartrain run-now SCHEDULE``: fire a schedule's target once, now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from geartrain.management.subcommands.launch import os_user
from geartrain.models import FireStatus, ScheduleFire
from geartrain.scheduler import api


def add_arguments(parser: Any) -> None:
    parser.add_argument("schedule", help="The schedule's name (or id).")


def started(fire: ScheduleFire) -> str:
    """``job 12`` or ``run 5 of pipeline 'etl'``."""
    if fire.job_id is not None:
        return f"job {fire.job_id}"
    run = fire.pipeline_run
    if run is not None:
        return f"run {run.pk} of pipeline {run.pipeline_name!r}"
    return "nothing"


def handle(command: BaseCommand, options: dict[str, Any]) -> int:
    key = options["schedule"]
    try:
        fire = api.run_now(key, launched_by=os_user())
    except api.ScheduleNotFound as exc:
        raise CommandError(str(exc)) from exc
    name = fire.schedule.name
    if fire.status == FireStatus.SKIPPED:
        raise CommandError(
            f"Run now of schedule {name!r} was skipped (the skip is recorded): "
            f"{fire.reason}"
        )
    command.stdout.write(f"Schedule {name!r} fired now: {started(fire)}.")
    return 0
