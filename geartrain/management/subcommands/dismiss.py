"""``geartrain dismiss RUN_ID``: a failed run stops holding scheduled launches."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from geartrain.management import arguments
from geartrain.pipelines import api


def add_arguments(parser: Any) -> None:
    parser.add_argument("run_id", type=arguments.positive_int, help="A failed run id.")


def handle(command: BaseCommand, options: dict[str, Any]) -> int:
    run_id = options["run_id"]
    try:
        changed = api.dismiss(run_id)
        run = api.get_run(run_id)
    except (api.RunNotFound, api.WrongRunState) as exc:
        raise CommandError(str(exc)) from exc
    label = f"Run {run.pk} of pipeline {run.pipeline_name!r}"
    if changed:
        command.stdout.write(
            f"{label} is dismissed; it no longer holds scheduled launches."
        )
    else:
        command.stdout.write(f"{label} was already dismissed.")
    return 0
