"""Writing jobs' outcomes and advancing their pipeline runs in one transaction."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from django.db import connections, transaction

from geartrain.conf import get_settings
from geartrain.models import Job, JobStatus
from geartrain.models.job import FINISHED
from geartrain.queue import Claimed, ClaimStrategy, SuccessAck

logger = logging.getLogger(__name__)

# What a worker child writes for a success: the same columns as a plain job's ack.
SUCCESS_FIELDS = frozenset({"status", "finished_at", "return_value", "attempt_log"})


@dataclasses.dataclass(slots=True)
class Written:
    """What :func:`finish_and_claim` did besides writing.

    ``discarded``: ids of jobs whose outcome was dropped (their lease was taken away).
    ``started``: whether the outcomes started a stage (its jobs are now ready).
    ``claimed``: jobs claimed in the same transaction (a stage started), in claim
    order; ``started_steps``: the ids of their step runs marked running with them.
    """

    discarded: list[int]
    started: bool = False
    claimed: list[Job] = dataclasses.field(default_factory=list)
    started_steps: set[int] = dataclasses.field(default_factory=set)


Claim = Callable[[], Claimed]


def finish_many(
    strategy: ClaimStrategy,
    owner: str | None,
    items: list[tuple[Job, dict[str, Any]]],
) -> list[int]:
    """Write several outcomes (and advance their runs) in one transaction.

    Returns the ids of jobs whose outcome was discarded because their lease was taken
    away. If the database fails, nothing is written and the caller keeps the items.
    See :func:`finish_and_claim`.
    """
    return finish_and_claim(strategy, owner, items).discarded


def finish_and_claim(
    strategy: ClaimStrategy,
    owner: str | None,
    items: list[tuple[Job, dict[str, Any]]],
    claim: Claim | None = None,
) -> Written:
    """:func:`finish_many`, and the caller's next claim if a stage started.

    ``claim``: when these outcomes start a stage, the caller's next claim, made in
    the same transaction with the claimed jobs' step runs marked running. The new
    stage's jobs are then the caller's as soon as the transaction commits, without
    waiting for a wake-up and a claim of its own: the next stage starts one commit
    after the last step's end. Only then: this transaction holds the run's lock, so
    ``cancel`` holds no step run the start could wait for.

    In a transaction of its own, a batch locks a run only where a stage ends or a step
    failed, without waiting; if that run is busy, the batch is written again with its
    runs locked first (see :mod:`geartrain.pipelines.engine`). Inside a caller's
    transaction, runs are always locked first.
    """
    from geartrain.pipelines import engine, starts

    db = get_settings().DATABASE
    runs_first = connections[db].in_atomic_block
    while True:
        try:
            with transaction.atomic(using=db):
                discarded, started = _write(
                    strategy, owner, items, runs_first=runs_first
                )
                written = Written(discarded, started)
                if started and claim is not None:
                    claimed = claim()
                    written.claimed = claimed.jobs
                    written.started_steps = (
                        starts.steps_started(claimed.jobs)
                        if claimed.started_steps is None
                        else claimed.started_steps
                    )
                return written
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
) -> tuple[list[int], bool]:
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
    started = engine.steps_finished(outcomes, runs_first=runs_first)
    return discarded, started


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
