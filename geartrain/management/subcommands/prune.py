"""``geartrain prune --older-than 14d [--status …] [--dry-run]``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from geartrain import operations
from geartrain.management import arguments
from geartrain.models.job import FINISHED


def add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--older-than",
        type=arguments.duration,
        required=True,
        help="Delete jobs that finished longer ago than this, e.g. 14d.",
    )
    parser.add_argument(
        "--status",
        action="append",
        choices=[s.value for s in FINISHED],
        help="Only this final status (repeatable; default: all final statuses).",
    )
    parser.add_argument("--dry-run", action="store_true", help="Count, delete nothing.")


def handle(command: BaseCommand, options: dict[str, Any]) -> int:
    statuses = options["status"] or [s.value for s in FINISHED]
    count = operations.prune(
        options["older_than"], statuses, dry_run=options["dry_run"]
    )
    verb = "Would delete" if options["dry_run"] else "Deleted"
    command.stdout.write(f"{verb} {count} job(s).")
    return 0
