"""``geartrain cancel RUN_ID``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from geartrain.management import arguments
from geartrain.models import RunStatus
from geartrain.pipelines import api


def add_arguments(parser: Any) -> None:
    parser.add_argument("run_id", type=arguments.positive_int, help="A run id.")


def handle(command: BaseCommand, options: dict[str, Any]) -> int:
    try:
        run = api.cancel(options["run_id"])
    except (api.RunNotFound, api.WrongRunState) as exc:
        raise CommandError(str(exc)) from exc
    label = f"Run {run.pk} of pipeline {run.pipeline_name!r}"
    if run.status == RunStatus.CANCELLED:
        command.stdout.write(f"{label} is cancelled.")
    else:
        running = run.step_runs.filter(status=RunStatus.RUNNING).count()
        command.stdout.write(
            f"{label} is being cancelled: waiting steps were cancelled, {running} "
            f"running step(s) finish, nothing new starts."
        )
    return 0
