"""Turn an attempt's outcome into the job's next state: retry, postpone or finish.

Decisions only: the fields returned here are written by :mod:`geartrain.queue`.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timedelta
from typing import Any

from geartrain import compat, jobs
from geartrain.conf import get_settings
from geartrain.exceptions import InvalidArguments, MaxPostponesReached, UnknownTask
from geartrain.models import Job, JobStatus
from geartrain.registry import registry
from geartrain.retry import RetryPolicy, postpone_allowed
from geartrain.tasks import max_postpones, retry_policy

logger = logging.getLogger(__name__)

# Errors that no retry can fix.
NEVER_RETRIED: tuple[type[BaseException], ...] = (InvalidArguments, MaxPostponesReached)


def log_entry(
    job: Job,
    worker_id: str,
    started_at: datetime | None,
    finished_at: datetime,
    *,
    error_class: str = "",
    message: str = "",
    traceback: str = "",
) -> dict[str, Any]:
    """One attempt-log entry."""
    entry: dict[str, Any] = {
        "attempt": job.attempts,
        "worker_id": worker_id,
        "started_at": (started_at or finished_at).isoformat(),
        "finished_at": finished_at.isoformat(),
        "outcome": "error" if error_class else "succeeded",
    }
    if error_class:
        entry.update(error_class=error_class, message=message, traceback=traceback)
    return entry


def policy_for(job: Job) -> RetryPolicy:
    """The retry policy of the job (its task's, with the job's own overrides)."""
    policy = _task_policy(job)
    if job.max_attempts:
        return dataclasses.replace(policy, max_attempts=job.max_attempts)
    return policy


def _task_policy(job: Job) -> RetryPolicy:
    try:
        return retry_policy(registry.get(job.task_path))
    except UnknownTask:
        return retry_policy(None)
    except (ValueError, ImportError):
        # Checked at decoration; only settings changed under a running task get here.
        logger.exception(
            "Invalid retry policy for task %s; not retrying", job.task_path
        )
        return RetryPolicy(max_attempts=1)


def after_error(
    job: Job,
    entry: dict[str, Any],
    error: BaseException | type[BaseException] | None,
    now: datetime,
) -> dict[str, Any]:
    """Fields for a failed attempt: back to the queue with a delay, or failed.

    ``error=None`` means the worker was lost or timed out.
    """
    policy = policy_for(job)
    log = [*job.attempt_log, entry]
    never = error is not None and _is(error, NEVER_RETRIED)
    if not never and policy.retries(error, job.attempts):
        delay = policy.delay_for(job.attempts)
        run_after = now + timedelta(seconds=delay)
        return {
            "status": JobStatus.SCHEDULED if delay > 0 else JobStatus.READY,
            "run_after": run_after,
            "attempt_log": log,
        }
    return {"status": JobStatus.FAILED, "finished_at": now, "attempt_log": log}


def _is(error: BaseException | type[BaseException], kinds: tuple[type, ...]) -> bool:
    cls = error if isinstance(error, type) else type(error)
    return issubclass(cls, kinds)


def after_postpone(
    job: Job, seconds: float | None, worker_id: str, now: datetime
) -> dict[str, Any]:
    """Fields for ``raise Postpone(seconds)``; fails the job past its limit."""
    try:
        limit = max_postpones(registry.get(job.task_path))
    except UnknownTask:
        limit = get_settings().MAX_POSTPONES
    if not postpone_allowed(job.postpones, limit):
        message = (
            f"Job {job.pk} of task {job.task_path!r} was postponed {job.postpones} "
            f"times, the limit. Raise the task's max_postpones or "
            f"GEARTRAIN['MAX_POSTPONES'] if it needs to wait longer."
        )
        entry = log_entry(
            job,
            worker_id,
            None,
            now,
            error_class="geartrain.exceptions.MaxPostponesReached",
            message=message,
            traceback=f"geartrain.exceptions.MaxPostponesReached: {message}\n",
        )
        return {
            "status": JobStatus.FAILED,
            "finished_at": now,
            "attempt_log": [*job.attempt_log, entry],
        }
    delay = get_settings().POSTPONE_DELAY if seconds is None else seconds
    return {
        "status": JobStatus.SCHEDULED if delay > 0 else JobStatus.READY,
        "run_after": now + timedelta(seconds=delay),
        "postpones": job.postpones + 1,
        # A postpone is not an attempt: give back the one the claim counted.
        "attempts": max(0, job.attempts - 1),
    }


def send_finished(job: Job, fields: dict[str, Any]) -> None:
    """Send Django's ``task_finished`` for a job that just reached a final status.

    Never raises: an unknown task or a failing receiver is logged.
    """
    for name, value in fields.items():
        setattr(job, name, value)
    job.lease_owner = None
    try:
        result = jobs.to_task_result(job)
        compat.task_finished.send(type(result.task.get_backend()), task_result=result)
    except UnknownTask:
        return
    except Exception:
        logger.exception("A task_finished receiver failed for job id=%s", job.pk)


def django_status(fields: dict[str, Any]) -> compat.TaskResultStatus | None:
    """The Django status a finished transition ends in, or None if it waits again."""
    status = fields.get("status")
    if status == JobStatus.SUCCEEDED:
        return compat.TaskResultStatus.SUCCESSFUL
    if status in (JobStatus.FAILED, JobStatus.CANCELLED):
        return compat.TaskResultStatus.FAILED
    return None
