"""Creating jobs and reading them back as Django ``TaskResult`` objects.

The one table that maps geartrain's job statuses to Django's ``TaskResultStatus`` lives
here. Enqueueing is a plain ``INSERT`` on the caller's connection, so inside
``transaction.atomic()`` a job commits or rolls back with the caller's own writes. On
PostgreSQL a statement-level trigger (see the migrations) sends ``NOTIFY`` on commit.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connections, transaction
from django.utils import timezone

from geartrain import compat, serialization
from geartrain.conf import get_settings
from geartrain.models import Job, JobStatus
from geartrain.registry import registry

STATUS_TO_DJANGO = {
    JobStatus.SCHEDULED: compat.TaskResultStatus.READY,
    JobStatus.READY: compat.TaskResultStatus.READY,
    JobStatus.RUNNING: compat.TaskResultStatus.RUNNING,
    JobStatus.SUCCEEDED: compat.TaskResultStatus.SUCCESSFUL,
    JobStatus.FAILED: compat.TaskResultStatus.FAILED,
    JobStatus.CANCELLED: compat.TaskResultStatus.FAILED,
}

Call = tuple[Sequence[Any], Mapping[str, Any]]


def unique_key(task_path: str, args: list[Any], kwargs: dict[str, Any]) -> str:
    """The key that makes two waiting jobs of the same call collide."""
    text = serialization.canonical([task_path, args, kwargs])
    return hashlib.sha256(text.encode()).hexdigest()


def build_job(
    task: compat.AnyTask,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    *,
    backend: str,
) -> Job:
    """An unsaved :class:`Job` for ``task(*args, **kwargs)``, arguments checked."""
    path = task.module_path
    norm_args, norm_kwargs = serialization.check_arguments(path, args, kwargs)
    now = timezone.now()
    run_after: datetime = task.run_after or now
    job = Job(
        task_path=path,
        backend=backend,
        queue=task.queue_name,
        priority=task.priority,
        args=norm_args,
        kwargs=norm_kwargs,
        status=JobStatus.SCHEDULED if run_after > now else JobStatus.READY,
        run_after=run_after,
        enqueued_at=now,
    )
    if getattr(task, "unique", False):
        job.unique_key = unique_key(path, norm_args, norm_kwargs)
    return job


def insert(job: Job) -> tuple[Job, bool]:
    """Save ``job``; for a unique job that collides, return the waiting one.

    Returns ``(job, created)``. The insert runs in a savepoint so that a collision does
    not break the caller's transaction.
    """
    using = get_settings().DATABASE
    if job.unique_key is None:
        job.save(force_insert=True, using=using)
        return job, True
    for _ in range(10):
        try:
            with transaction.atomic(using=using):
                job.save(force_insert=True, using=using)
            return job, True
        except IntegrityError:
            existing = (
                Job.objects.using(using).filter(unique_key=job.unique_key).first()
            )
            if existing is not None:
                return existing, False
            # The waiting job started between our insert and our read: try again.
            job.pk = None
    raise RuntimeError(f"Could not enqueue unique job key={job.unique_key}")


def bulk_insert(
    task: compat.AnyTask, calls: Iterable[Call], *, backend: str
) -> list[tuple[Job, bool]]:
    """Insert one job per call in as few statements as the database allows.

    Returns ``(job, created)`` pairs; unique jobs that collide come back uncreated.
    """
    jobs = [build_job(task, args, kwargs, backend=backend) for args, kwargs in calls]
    using = get_settings().DATABASE
    if getattr(task, "unique", False) or not _returns_bulk_ids(using):
        # MySQL (unlike MariaDB) cannot return the ids of a multi-row insert.
        return [insert(job) for job in jobs]
    created = Job.objects.using(using).bulk_create(jobs, batch_size=2000)
    return [(job, True) for job in created]


def bulk_insert_fast(
    task: compat.AnyTask, calls: Iterable[Call], *, backend: str
) -> list[compat.AnyTaskResult] | None:
    """Insert non-unique jobs in one statement where the database allows it.

    Returns the results, or None when this database has no fast path (the caller
    then uses :func:`bulk_insert`).
    """
    from geartrain.queue import BulkFixed, get_strategy

    strategy = get_strategy(get_settings().DATABASE)
    if not strategy.supports_fast_bulk_insert or getattr(task, "unique", False):
        return None
    path = task.module_path
    checked = [serialization.check_arguments(path, a, k) for a, k in calls]
    now = timezone.now()
    run_after = task.run_after or now
    status = JobStatus.SCHEDULED if run_after > now else JobStatus.READY
    fixed = BulkFixed(
        path, backend, task.queue_name, task.priority, status, run_after, now
    )
    texts = [(serialization.dumps(a), serialization.dumps(k)) for a, k in checked]
    ids = strategy.bulk_insert(fixed, texts) if texts else []
    ready = STATUS_TO_DJANGO[status]
    return [
        compat.TaskResult(
            task=task,
            id=str(job_id),
            status=ready,
            enqueued_at=now,
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=args,
            kwargs=kwargs,
            backend=backend,
            errors=[],
            worker_ids=[],
        )
        for job_id, (args, kwargs) in zip(ids, checked, strict=True)
    ]


def _as_enqueued(task: compat.AnyTask, job: Job) -> compat.AnyTask:
    """``task`` with the priority, queue and run_after this job was enqueued with."""
    deferred = job.run_after if job.run_after > job.enqueued_at else None
    if (task.priority, task.queue_name, task.run_after) == (
        job.priority,
        job.queue,
        deferred,
    ):
        return task
    try:
        return dataclasses.replace(
            task, priority=job.priority, queue_name=job.queue, run_after=deferred
        )
    except compat.InvalidTask:
        # The configuration changed since (a queue was removed): keep the task.
        return task


def _returns_bulk_ids(using: str) -> bool:
    return bool(connections[using].features.can_return_rows_from_bulk_insert)


def to_task_result(
    job: Job, task: compat.AnyTask | None = None
) -> compat.AnyTaskResult:
    """Django's view of ``job``."""
    task = _as_enqueued(task if task is not None else registry.get(job.task_path), job)
    worker_ids = job.worker_ids
    if job.status == JobStatus.RUNNING and job.lease_owner:
        worker_ids.append(job.lease_owner)
    result = compat.TaskResult(
        task=task,
        id=str(job.pk),
        status=STATUS_TO_DJANGO[JobStatus(job.status)],
        enqueued_at=job.enqueued_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        last_attempted_at=job.last_attempted_at,
        args=job.args,
        kwargs=job.kwargs,
        backend=job.backend,
        errors=[
            compat.TaskError(
                exception_class_path=e["error_class"], traceback=e.get("traceback", "")
            )
            for e in job.errors
        ],
        worker_ids=worker_ids,
    )
    object.__setattr__(result, "_return_value", job.return_value)
    return result
