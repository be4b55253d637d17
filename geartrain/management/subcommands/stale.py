"""``geartrain stale --older-than 1h`` and ``geartrain stale --scheduled``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand

from geartrain import operations
from geartrain.management import arguments
from geartrain.models import Job, JobStatus

TIME = "%Y-%m-%d %H:%M:%S"


def add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--older-than",
        type=arguments.duration,
        default=timedelta(hours=1),
        help="Waiting jobs due longer ago than this are stale (default 1h).",
    )
    parser.add_argument(
        "--scheduled",
        action="store_true",
        help="List only jobs still scheduled although their run_after passed longer "
        "ago than --older-than: no worker has promoted them to ready.",
    )


def handle(command: BaseCommand, options: dict[str, Any]) -> int:
    out = command.stdout
    if options["scheduled"]:
        found = operations.stale_scheduled(options["older_than"])
        kind = "scheduled jobs"
    else:
        found = operations.stale(options["older_than"])
        kind = "jobs"
    if not found:
        out.write(f"No stale {kind}.")
        return 0
    out.write(f"Stale {kind}: {len(found)}")
    for job in found:
        out.write(
            f"  {job.pk} {job.task_path} queue={job.queue} {job.status}: {_why(job)}"
        )
    return 0


def _why(job: Job) -> str:
    if job.status == JobStatus.RUNNING:
        expired = f"{job.lease_expires_at:{TIME}}"
        return f"lease of {job.lease_owner} expired {expired}"
    if job.status == JobStatus.SCHEDULED:
        return f"due since {job.run_after:{TIME}}"
    return f"ready since {job.run_after:{TIME}}"
