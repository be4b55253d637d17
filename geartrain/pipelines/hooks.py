"""Writing a job's outcome and advancing its pipeline run in one transaction."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from geartrain.conf import get_settings
from geartrain.models import Job, JobStatus
from geartrain.models.job import FINISHED
from geartrain.queue import ClaimStrategy


def finish_job(
    strategy: ClaimStrategy, job: Job, owner: str | None, fields: dict[str, Any]
) -> bool:
    """Write ``fields`` to a leased job; a finished step job advances its run.

    Returns False when the lease was taken away (nothing is written then).
    """
    if job.step_run_id is None:
        return strategy.finish(job.pk, owner, **fields)
    with transaction.atomic(using=get_settings().DATABASE):
        if not strategy.finish(job.pk, owner, **fields):
            return False
        if fields.get("status") in FINISHED:
            for name, value in fields.items():
                setattr(job, name, value)
            from geartrain.pipelines import engine

            engine.step_finished(job)
    return True


def jobs_cancelled(jobs: list[Job]) -> None:
    """Advance the runs of step jobs that an operator cancelled."""
    from geartrain.pipelines import engine

    for job in jobs:
        if job.step_run_id is not None:
            job.status = JobStatus.CANCELLED
            engine.step_finished(job)
