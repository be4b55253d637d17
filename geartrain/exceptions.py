"""Exceptions raised by geartrain.

::

    GeartrainError
    ├── InvalidArguments (also TypeError)      arguments or results that are not JSON
    ├── UnknownTask (also LookupError)         a job names a task that is not registered
    ├── UnknownQueue (also ValueError)         a queue that no backend declares
    ├── JobDoesNotExist (also LookupError)
    ├── JobTimeout                             recorded when a job outlives its timeout
    ├── WorkerLost                             recorded when a worker died mid-job
    └── MaxPostponesReached                    recorded when a job postponed too often

    Postpone (control flow, deliberately not a GeartrainError)

``InvalidTask`` is Django's own (``django.tasks.exceptions.InvalidTask``), re-exported
by
:mod:`geartrain.compat`; geartrain raises it for bad task options, priorities and
queues so
that code written against Django's Tasks framework catches it unchanged.
"""

from __future__ import annotations


class GeartrainError(Exception):
    """Base class of geartrain's errors. Do not raise directly."""


class InvalidArguments(GeartrainError, TypeError):
    """Arguments or a return value that do not survive a JSON round trip."""


class UnknownTask(GeartrainError, LookupError):
    """A job names a task path that is not in the registry."""

    def __init__(self, task_path: str) -> None:
        self.task_path = task_path
        super().__init__(
            f"Task {task_path!r} is not registered. Define it with @task in the "
            f"'tasks' module of an installed app, or list its module in "
            f"GEARTRAIN['TASK_MODULES']."
        )


class UnknownQueue(GeartrainError, ValueError):
    """A queue name that the backend does not declare."""

    def __init__(self, queue: str, known: list[str]) -> None:
        self.queue = queue
        self.known = known
        names = ", ".join(repr(q) for q in known)
        super().__init__(
            f"Queue {queue!r} is not configured. Configured queues: {names}. "
            f"Add it to TASKS[...]['QUEUES'] or pick a configured queue."
        )


class JobDoesNotExist(GeartrainError, LookupError):
    """No job has the given id."""


class JobTimeout(GeartrainError):
    """Stored as the error of an attempt that exceeded its task's timeout."""


class WorkerLost(GeartrainError):
    """Stored as the error of an attempt whose worker died or lost its lease."""


class MaxPostponesReached(GeartrainError):
    """Stored as the error of a job that postponed more often than allowed."""


class Postpone(Exception):
    """Raise inside a task to run it again later without counting a failure.

    ``raise Postpone(30)`` puts the job back in the queue to start no sooner than 30
    seconds from now. The job's ``postpones`` counter goes up by one; its attempts do
    not. ``Postpone()`` uses ``GEARTRAIN["POSTPONE_DELAY"]``.
    """

    def __init__(self, seconds: float | None = None) -> None:
        if seconds is not None and (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or seconds < 0
        ):
            raise ValueError(
                f"Postpone delay {seconds!r} is not a number of seconds >= 0. "
                f"Pass a delay such as Postpone(30), or Postpone() for the default."
            )
        self.seconds = seconds
        super().__init__(seconds)
