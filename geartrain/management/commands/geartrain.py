"""``python manage.py geartrain <subcommand>``: one command, thin subcommands.

Each subcommand lives in :mod:`geartrain.management.subcommands` and calls a service.
"""

from __future__ import annotations

import importlib
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

SUBCOMMANDS = {
    "worker": "Run a worker: a supervisor and its child processes.",
    "scheduler": "Fire due schedule slots until stopped; --once runs one tick.",
    "status": "Show jobs by queue and status, live workers, the oldest ready job.",
    "stale": "List running jobs whose lease expired and ready jobs nobody picked up.",
    "retry": "Enqueue finished jobs again from their stored call.",
    "prune": "Delete finished jobs older than a given age, in batches.",
    "sync": "Write the pipelines declared in code to the database; report changes.",
    "export": "Write pipeline definitions as JSON or YAML.",
    "import": "Read pipeline definitions from a JSON or YAML file into the database.",
    "launch": "Launch a pipeline run; --wait follows it to the end.",
    "cancel": "Cancel a run: waiting steps are cancelled, running ones finish.",
    "resume": "Run again the steps of a failed or cancelled run that did not succeed.",
    "dismiss": "Dismiss a failed run so that it no longer holds scheduled launches.",
    "schedules": "List schedules: cron, time zone, target, next and last slot, runs.",
    "run-now": "Fire a schedule's target once, now; its cron timing is unchanged.",
    "enable": "Enable schedules; the next slot counts from now.",
    "disable": "Disable schedules: no slot fires until enabled again.",
    "toggle": "Enable disabled schedules and disable enabled ones.",
    "backfill": "Fire the slots of a past interval that have not fired yet.",
}
MODULES = {  # subcommands whose module name differs
    "import": "import_",
    "run-now": "run_now",
    "enable": "enabling",
    "disable": "enabling",
    "toggle": "enabling",
}


def _module(name: str) -> Any:
    return importlib.import_module(
        f"geartrain.management.subcommands.{MODULES.get(name, name)}"
    )


class Command(BaseCommand):
    help = "geartrain: background work for Django."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", metavar="subcommand")
        sub.required = True
        for name, summary in SUBCOMMANDS.items():
            module = _module(name)
            subparser = sub.add_parser(name, help=summary, description=summary)
            module.add_arguments(subparser)

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["subcommand"]
        module = _module(name)
        code = module.handle(self, options)
        if code:
            raise CommandError(f"geartrain {name} failed.", returncode=int(code))
