"""``geartrain resume RUN_ID``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from geartrain.compat import InvalidTask
from geartrain.management import arguments
from geartrain.management.subcommands.launch import os_user
from geartrain.models import RunStatus
from geartrain.pipelines import api, launching
from geartrain.pipelines.spec import InvalidPipeline


def add_arguments(parser: Any) -> None:
    parser.add_argument("run_id", type=arguments.positive_int, help="A run id.")


def handle(command: BaseCommand, options: dict[str, Any]) -> int:
    try:
        run = api.resume(options["run_id"], launched_by=os_user())
    except (
        api.RunNotFound,
        launching.LaunchRefused,
        InvalidPipeline,
        InvalidTask,
    ) as exc:
        raise CommandError(str(exc)) from exc
    steps = run.step_runs.all()
    kept = steps.filter(status=RunStatus.SUCCEEDED).count()
    again = steps.exclude(status__in=(RunStatus.SUCCEEDED, RunStatus.SKIPPED)).count()
    command.stdout.write(
        f"Run {options['run_id']} of pipeline {run.pipeline_name!r} resumed as run "
        f"{run.pk}: {again} step(s) run again, {kept} succeeded step(s) kept."
    )
    return 0
