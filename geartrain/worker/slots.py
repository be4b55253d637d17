"""The slot a child shares with its supervisor: the running job and its deadline.

Two doubles in shared memory (``multiprocessing.RawArray("d", 2)``), written by the
child and read by the supervisor without a lock: ``[job id, deadline]``, the deadline
a ``time.time()`` instant or 0 (no timeout), both 0 between jobs. The order of the
writes and reads is the protocol: the child writes the id, then the deadline, and
clears them the other way round; the supervisor reads the id, the deadline, then the
id again. So a deadline is only ever paired with the job it was set for, even when
the child moves from one job to the next between two reads.
"""

from __future__ import annotations

from typing import Any

JOB, DEADLINE = 0, 1


def running(slot: Any, job_id: int, deadline: float) -> None:
    """Record that the child started ``job_id``; ``deadline`` 0 for none."""
    slot[JOB] = float(job_id)
    slot[DEADLINE] = deadline


def idle(slot: Any) -> None:
    """Record that the child's job ended."""
    slot[DEADLINE] = 0.0
    slot[JOB] = 0.0


def running_job(slot: Any) -> int:
    """The id of the job the child runs, 0 when none."""
    return int(slot[JOB])


def overdue_job(slot: Any, now: float) -> int | None:
    """The id of the job running past its deadline at ``now``, or None."""
    job = slot[JOB]
    deadline = slot[DEADLINE]
    if not job or not deadline or now <= deadline or slot[JOB] != job:
        return None  # none, no timeout, not yet, or the child has moved on
    return int(job)


__all__ = ["idle", "overdue_job", "running", "running_job"]
