"""``geartrain sync [--dry-run]``: pipelines declared in code → database."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from geartrain.pipelines import code, sync
from geartrain.pipelines.spec import InvalidPipeline


def add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="Report what would change; write nothing.",
    )


def handle(command: BaseCommand, options: dict[str, Any]) -> int:
    try:
        specs = code.discover()
        report = sync.sync(specs, dry_run=options["dry_run"])
    except ImproperlyConfigured as exc:
        raise CommandError(str(exc)) from exc
    except InvalidPipeline as exc:
        raise CommandError(
            "Nothing was written; fix these problems first:\n" + str(exc)
        ) from exc
    if not specs:
        command.stdout.write(
            "No pipelines are declared in code: no installed app has a 'pipelines' "
            "module with PipelineSpec objects."
        )
    for line in report.lines():
        command.stdout.write(line)
    return 0
