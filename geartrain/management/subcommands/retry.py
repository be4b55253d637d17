"""``geartrain retry ID… | --failed [--task PATH]``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from geartrain import operations
from geartrain.conf import get_settings
from geartrain.management import arguments
from geartrain.models import Job, JobStatus


def add_arguments(parser: Any) -> None:
    parser.add_argument("ids", nargs="*", type=arguments.positive_int, help="Job ids.")
    parser.add_argument("--failed", action="store_true", help="Retry every failed job.")
    parser.add_argument("--task", help="With --failed: only jobs of this task path.")


def handle(command: BaseCommand, options: dict[str, Any]) -> int:
    ids = list(dict.fromkeys(options["ids"]))
    failed, task = options["failed"], options["task"]
    if bool(ids) == bool(failed):
        raise CommandError("Give job ids or --failed (not both, not neither).")
    if task and not failed:
        raise CommandError("--task only goes with --failed.")
    qs = Job.objects.using(get_settings().DATABASE)
    if failed:
        # Failed jobs that were already retried are left alone (no duplicates).
        failed_jobs = qs.filter(status=JobStatus.FAILED, retries__isnull=True)
        jobs = list(failed_jobs.filter(**({"task_path": task} if task else {})))
    else:
        found = {j.pk: j for j in qs.filter(pk__in=ids)}
        missing = [i for i in ids if i not in found]
        if missing:
            raise CommandError(f"No job has the id {missing[0]}.")
        unfinished = [j for j in found.values() if not j.is_finished]
        if unfinished:
            job = unfinished[0]
            raise CommandError(
                f"Job {job.pk} is {job.status}; only finished jobs (succeeded, failed, "
                f"cancelled) can be retried."
            )
        jobs = [found[i] for i in ids]
    created = operations.retry_jobs(jobs)
    for old, new in zip(jobs, created, strict=False):
        command.stdout.write(f"Job {old.pk} retried as job {new.pk}.")
    command.stdout.write(f"Retried {len(created)} job(s).")
    return 0
