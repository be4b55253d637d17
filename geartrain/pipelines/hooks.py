"""Writing jobs' outcomes and advancing their pipeline runs in one transaction."""

from __future__ import annotations

import logging
from typing import Any

from django.db import connections, transaction

from geartrain.conf import get_settings
from geartrain.models import Job, JobStatus
from geartrain.models.job import FINISHED
from geartrain.queue import ClaimStrategy, SuccessAck

logger = logging.getLogger(__name__)

# What a worker child writes for a success: the same columns as a plain job's ack.
SUCCESS_FIELDS = frozenset({"status", "finished_at", "return_value", "attempt_log"})


def finish_many(
    strategy: ClaimStrategy,
    owner: str | None,
    items: list[tuple[Job, dict[str, Any]]],
) -> list[int]:
    """Write several outcomes (and advance their runs) in one transaction.

    Returns the ids of jobs whose outcome was discarded because their lease was taken
    away. If the database fails, nothing is written and the caller keeps the items.

    In a transaction of its own, a batch locks a run only where a stage ends or a step
    failed, without waiting; if that run is busy, the batch is written again with its
    runs locked first (see :mod:`geartrain.pipelines.engine`). Inside a caller's
    transaction, runs are always locked first.
    """
    from geartrain.pipelines import engine

    db = get_settings().DATABASE
    runs_first = connections[db].in_atomic_block
    while True:
        try:
            with transaction.atomic(using=db):
                return _write(strategy, owner, items, runs_first=runs_first)
        except engine.RunBusy:
            if runs_first:
                raise
            logger.debug("A run of the batch is busy; writing it again, runs first")
            runs_first = True


def _write(
    strategy: ClaimStrategy,
    owner: str | None,
    items: list[tuple[Job, dict[str, Any]]],
    *,
    runs_first: bool,
) -> list[int]:
    from geartrain.pipelines import bulk, engine

    discarded = []
    acks = []
    written = []
    for job, fields in items:
        if (
            owner is not None
            and fields.keys() == SUCCESS_FIELDS
            and fields["status"] == JobStatus.SUCCEEDED
        ):
            acks.append((job, fields))
        elif strategy.finish(job.pk, owner, **fields):
            written.append((job, fields))
        else:
            discarded.append(job.pk)
    if acks:
        assert owner is not None  # noqa: S101 - checked above
        ok = set(strategy.write_successes(owner, [_ack(j, f) for j, f in acks]))
        discarded += [job.pk for job, _ in acks if job.pk not in ok]
        written += [(job, fields) for job, fields in acks if job.pk in ok]
    outcomes = []
    for job, fields in written:
        if job.step_run_id is not None and fields.get("status") in FINISHED:
            for name, value in fields.items():
                setattr(job, name, value)
            outcomes.append(bulk.outcome_of(job))
    engine.steps_finished(outcomes, runs_first=runs_first)
    return discarded


def _ack(job: Job, fields: dict[str, Any]) -> SuccessAck:
    return SuccessAck(
        job.pk, fields["finished_at"], fields["return_value"], fields["attempt_log"]
    )


def jobs_cancelled(jobs: list[Job]) -> None:
    """Advance the runs of step jobs that an operator cancelled."""
    from geartrain.pipelines import bulk, engine

    outcomes = []
    for job in jobs:
        if job.step_run_id is not None:
            job.status = JobStatus.CANCELLED
            outcomes.append(bulk.outcome_of(job))
    engine.steps_finished(outcomes)
