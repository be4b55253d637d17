"""``geartrain stale --older-than 1h``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand

from geartrain import operations
from geartrain.management import arguments


def add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--older-than",
        type=arguments.duration,
        default=timedelta(hours=1),
        help="Ready jobs waiting longer than this are stale (default 1h).",
    )


def handle(command: BaseCommand, options: dict[str, Any]) -> int:
    found = operations.stale(options["older_than"])
    out = command.stdout
    if not found:
        out.write("No stale jobs.")
        return 0
    out.write(f"Stale jobs: {len(found)}")
    for job in found:
        if job.status == "running":
            expired = f"{job.lease_expires_at:%Y-%m-%d %H:%M:%S}"
            why = f"lease of {job.lease_owner} expired {expired}"
        else:
            why = f"ready since {job.run_after:%Y-%m-%d %H:%M:%S}"
        out.write(f"  {job.pk} {job.task_path} queue={job.queue} {job.status}: {why}")
    return 0
