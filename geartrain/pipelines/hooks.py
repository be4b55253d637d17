"""Writing a job's outcome and advancing its pipeline run in one transaction."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from geartrain.conf import get_settings
from geartrain.models import Job, JobStatus
from geartrain.models.job import FINISHED
from geartrain.queue import ClaimStrategy


def finish_many(
    strategy: ClaimStrategy,
    owner: str | None,
    items: list[tuple[Job, dict[str, Any]]],
) -> list[int]:
    """Write several outcomes (and advance their runs) in one transaction.

    Returns the ids of jobs whose outcome was discarded because their lease was taken
    away. If the database fails, nothing is written and the caller keeps the items.
    """
    discarded = []
    # Plain jobs first, then steps in step-run order: children that finish steps of
    # the same runs lock those runs in the same order (a deadlock would only be
    # retried, but it costs a round of waiting).
    ordered = sorted(items, key=lambda item: (item[0].step_run_id or 0, item[0].pk))
    with transaction.atomic(using=get_settings().DATABASE):
        for job, fields in ordered:
            if not strategy.finish(job.pk, owner, **fields):
                discarded.append(job.pk)
                continue
            if job.step_run_id is not None and fields.get("status") in FINISHED:
                for name, value in fields.items():
                    setattr(job, name, value)
                from geartrain.pipelines import engine

                engine.step_finished(job)
    return discarded


def jobs_cancelled(jobs: list[Job]) -> None:
    """Advance the runs of step jobs that an operator cancelled."""
    from geartrain.pipelines import engine

    for job in jobs:
        if job.step_run_id is not None:
            job.status = JobStatus.CANCELLED
            engine.step_finished(job)
