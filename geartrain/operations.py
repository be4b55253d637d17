"""Operator services shared by the management command and the admin.

Faces stay thin: ``geartrain retry`` and the admin's "retry" action both call
:func:`retry_jobs`; "cancel" calls :func:`cancel_jobs`, and so on.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count, Min
from django.utils import timezone

from geartrain.conf import get_settings
from geartrain.models import Job, JobStatus, WorkerProcess
from geartrain.models.job import FINISHED, WAITING
from geartrain.pipelines import hooks

logger = logging.getLogger(__name__)

PRUNE_BATCH = 1000
STALE_LIMIT = 10_000  # jobs listed by stale() and stale_scheduled() at most


def _db() -> str:
    return get_settings().DATABASE


def retry_jobs(jobs: Iterable[Job]) -> list[Job]:
    """Enqueue a fresh copy of each finished job's stored call, linked to the old one.

    Jobs that are still waiting or running are skipped (they will run anyway).
    """
    created = []
    now = timezone.now()
    with transaction.atomic(using=_db()):
        for old in jobs:
            if old.status not in FINISHED:
                continue
            new = Job(
                task_path=old.task_path,
                backend=old.backend,
                queue=old.queue,
                priority=old.priority,
                args=old.args,
                kwargs=old.kwargs,
                status=JobStatus.READY,
                run_after=now,
                enqueued_at=now,
                retried_from=old,
            )
            new.save(force_insert=True, using=_db())
            created.append(new)
            logger.info("Job id=%s retried as id=%s", old.pk, new.pk)
    return created


def cancel_jobs(jobs: Iterable[Job]) -> int:
    """Cancel jobs that have not started; running and finished jobs are left alone."""
    ids = [job.pk for job in jobs]
    with transaction.atomic(using=_db()):
        waiting = list(
            Job.objects.using(_db())
            .select_for_update()
            .filter(pk__in=ids, status__in=WAITING)
        )
        count = (
            Job.objects.using(_db())
            .filter(pk__in=[j.pk for j in waiting], status__in=WAITING)
            .update(
                status=JobStatus.CANCELLED,
                finished_at=timezone.now(),
                unique_key=None,
            )
        )
        hooks.jobs_cancelled([j for j in waiting if j.step_run_id is not None])
    logger.info("Cancelled count=%s of requested=%s", count, len(ids))
    return count


def prune(
    older_than: timedelta,
    statuses: Sequence[str] = FINISHED,
    *,
    dry_run: bool = False,
    batch_size: int = PRUNE_BATCH,
) -> int:
    """Delete finished jobs older than ``older_than``, in batches.

    Only final statuses can be pruned; the age is measured from ``finished_at``.
    """
    cutoff = timezone.now() - older_than
    qs = Job.objects.using(_db()).filter(status__in=statuses, finished_at__lt=cutoff)
    if dry_run:
        return qs.count()
    deleted = 0
    while True:
        ids = list(qs.order_by("finished_at").values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        # Links from retried copies must not block the delete.
        Job.objects.using(_db()).filter(retried_from_id__in=ids).update(
            retried_from=None
        )
        count, _ = Job.objects.using(_db()).filter(pk__in=ids).delete()
        deleted += count


@dataclasses.dataclass(frozen=True, slots=True)
class Status:
    """A snapshot for ``geartrain status``."""

    counts: dict[str, dict[str, int]]
    workers: list[WorkerProcess]
    oldest_ready: datetime | None
    now: datetime

    @property
    def oldest_ready_age(self) -> timedelta | None:
        """How long the oldest ready job has waited."""
        return None if self.oldest_ready is None else self.now - self.oldest_ready


def status(worker_grace: float | None = None) -> Status:
    """Jobs by queue and status, live workers, and the oldest ready job."""
    now = timezone.now()
    conf = get_settings()
    grace = worker_grace if worker_grace is not None else 3 * conf.HEARTBEAT_INTERVAL
    counts: dict[str, dict[str, int]] = {}
    rows = (
        Job.objects.using(_db())
        .values("queue", "status")
        .annotate(n=Count("id"))
        .order_by("queue", "status")
    )
    for row in rows:
        counts.setdefault(row["queue"], {})[row["status"]] = row["n"]
    workers = list(
        WorkerProcess.objects.using(_db()).filter(
            last_heartbeat_at__gte=now - timedelta(seconds=grace)
        )
    )
    oldest = (
        Job.objects.using(_db())
        .filter(status=JobStatus.READY)
        .aggregate(m=Min("run_after"))["m"]
    )
    return Status(counts=counts, workers=workers, oldest_ready=oldest, now=now)


def stale(older_than: timedelta) -> list[Job]:
    """Running jobs whose lease expired, and ready jobs waiting longer than given.

    Scheduled jobs whose ``run_after`` passed more than ``older_than`` ago are listed
    too. At most :data:`STALE_LIMIT` jobs, oldest ``run_after`` first.
    """
    return list(
        Job.objects.using(_db())
        .stale(older_than)
        .order_by("run_after", "id")[:STALE_LIMIT]
    )


def stale_scheduled(older_than: timedelta) -> list[Job]:
    """Jobs still ``scheduled`` although their ``run_after`` passed ``older_than`` ago.

    Every worker promotes the due scheduled jobs of every queue to ``ready`` once per
    ``POLL_INTERVAL``, so a job listed here means that no worker has polled this
    database since the job became due. (A due job whose queue no worker serves is
    promoted and waits as ``ready``: :func:`stale` lists it.) At most
    :data:`STALE_LIMIT` jobs, oldest ``run_after`` first; the ``status, run_after``
    index serves the query.
    """
    cutoff = timezone.now() - older_than
    return list(
        Job.objects.using(_db())
        .filter(status=JobStatus.SCHEDULED, run_after__lt=cutoff)
        .order_by("run_after", "id")[:STALE_LIMIT]
    )
