"""Worker registration, heartbeats, and recovery of jobs whose worker is gone.

The reaper is safe to run in many workers at once: it locks the expired jobs it handles
with ``SKIP LOCKED`` (on SQLite the single writer serialises it), and every write is
guarded by the lease owner it read, so a job is recovered once.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Sequence
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from geartrain.conf import Settings
from geartrain.exceptions import WorkerLost
from geartrain.models import Job, JobStatus, WorkerProcess
from geartrain.pipelines import errors, hooks
from geartrain.queue import get_strategy
from geartrain.worker import outcomes

logger = logging.getLogger(__name__)

REAP_BATCH = 100


def new_worker_id() -> str:
    """A readable, unique worker id: ``host-pid-random``."""
    host = socket.gethostname().split(".")[0][:40] or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


def register(
    worker_id: str, queues: Sequence[str], concurrency: int, conf: Settings
) -> None:
    """Record this worker so operators see it."""
    now = timezone.now()
    WorkerProcess.objects.using(conf.DATABASE).update_or_create(
        id=worker_id,
        defaults={
            "hostname": socket.gethostname()[:255],
            "pid": os.getpid(),
            "queues": list(queues),
            "concurrency": concurrency,
            "started_at": now,
            "last_heartbeat_at": now,
        },
    )


def heartbeat(worker_id: str, conf: Settings, *, stopping: bool = False) -> int:
    """Refresh the registration and renew the leases of this worker's jobs."""
    WorkerProcess.objects.using(conf.DATABASE).filter(id=worker_id).update(
        last_heartbeat_at=timezone.now(), stopping=stopping
    )
    return get_strategy(conf.DATABASE).renew(f"{worker_id}/", conf.LEASE_SECONDS)


def unregister(worker_id: str, conf: Settings) -> None:
    """Remove this worker's registration on a clean exit."""
    WorkerProcess.objects.using(conf.DATABASE).filter(id=worker_id).delete()


def forget_dead_workers(conf: Settings) -> int:
    """Delete registrations of workers silent for ``WORKER_FORGET_AFTER`` seconds."""
    cutoff = timezone.now() - timedelta(seconds=conf.WORKER_FORGET_AFTER)
    deleted, _ = (
        WorkerProcess.objects.using(conf.DATABASE)
        .filter(last_heartbeat_at__lt=cutoff)
        .delete()
    )
    return deleted


def record_lost(job: Job, *, error_class: str, message: str, conf: Settings) -> bool:
    """Record that ``job``'s attempt ended without an outcome; retry or fail it.

    The write is guarded by the lease owner read from ``job``.
    """
    now = timezone.now()
    entry = outcomes.log_entry(
        job,
        job.lease_owner or "",
        job.last_attempted_at,
        now,
        error_class=error_class,
        message=message,
        traceback=f"{error_class}: {message}\n",
    )
    fields = outcomes.after_error(job, entry, None, now)
    strategy = get_strategy(conf.DATABASE)
    written = not hooks.finish_many(strategy, job.lease_owner, [(job, fields)])
    if written:
        logger.warning(
            "Job id=%s task=%s attempt=%s lost: %s; now %s",
            job.pk,
            job.task_path,
            job.attempts,
            message,
            fields["status"],
            extra={"action": "job_lost"},
        )
        if outcomes.django_status(fields) is not None:
            outcomes.send_finished(job, fields)
        if job.step_run_id is not None and fields["status"] == JobStatus.FAILED:
            details = {"error_class": error_class, "message": message}
            errors.handle(job.step_run_id, WorkerLost(message), details)
    return written


def reap_expired(conf: Settings) -> int:
    """Return jobs whose lease expired to the queue as a new attempt (or fail them)."""
    now = timezone.now()
    with transaction.atomic(using=conf.DATABASE):
        expired = list(
            Job.objects.using(conf.DATABASE)
            .select_for_update(skip_locked=True)
            .lease_expired(now)
            .order_by("lease_expires_at")[:REAP_BATCH]
        )
        for job in expired:
            record_lost(
                job,
                error_class="geartrain.exceptions.WorkerLost",
                message=(
                    f"The lease of worker {job.lease_owner} expired at "
                    f"{job.lease_expires_at:%Y-%m-%d %H:%M:%S} UTC without a "
                    f"heartbeat; "
                    f"the worker is presumed dead."
                ),
                conf=conf,
            )
    return len(expired)


def recover_child_jobs(
    owner: str,
    running_job_id: int | None,
    *,
    reason: str,
    error_class: str,
    conf: Settings,
) -> None:
    """After a child died: record its running job as lost, release the rest."""
    strategy = get_strategy(conf.DATABASE)
    if running_job_id:
        job = (
            Job.objects.using(conf.DATABASE)
            .filter(pk=running_job_id, status=JobStatus.RUNNING, lease_owner=owner)
            .first()
        )
        if job is not None:
            record_lost(job, error_class=error_class, message=reason, conf=conf)
    strategy.release(owner)
