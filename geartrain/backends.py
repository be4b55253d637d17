"""``geartrain.backends.DatabaseBackend``: the engine behind Django's Tasks framework.

Semantic mapping (see also :data:`geartrain.jobs.STATUS_TO_DJANGO`):

* a Django ``TaskResult`` is a view of one :class:`~geartrain.models.Job` row; its
``id``
  is the job's primary key as a string;
* job statuses ``scheduled`` and ``ready`` read as ``READY``, ``cancelled`` as
``FAILED``;
* ``errors`` and ``worker_ids`` list every finished attempt (a running attempt adds its
  worker id);
* ``run_after``, priorities, async task functions and ``get_result`` from any process
are
  all supported.

Beyond Django: :func:`bulk_enqueue`, unique tasks (``@task(unique=True)``) and
per-task retry policy (see :mod:`geartrain.tasks`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

from django.conf import settings
from django.core import checks
from django.utils import timezone

from geartrain import compat, conf, jobs
from geartrain.conf import get_settings
from geartrain.models import Job
from geartrain.registry import registry
from geartrain.retry import BACKOFFS
from geartrain.tasks import GeartrainTask, build_policy


class DatabaseBackend(compat.BaseTaskBackend):
    """Stores jobs in the project's database; ``geartrain worker`` runs them."""

    task_class = GeartrainTask
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def validate_task(self, task: compat.AnyTask) -> None:
        """Django's rules, with messages that name the bad value, plus geartrain's."""
        self._validate_call_options(task)
        super().validate_task(task)
        if isinstance(task, GeartrainTask):
            self._validate_policy(task)

    def _validate_call_options(self, task: compat.AnyTask) -> None:
        priority = task.priority
        if (
            isinstance(priority, bool)
            or not isinstance(priority, int)
            or not compat.TASK_MIN_PRIORITY <= priority <= compat.TASK_MAX_PRIORITY
        ):
            raise compat.InvalidTask(
                f"Priority {priority!r} of task {task.module_path!r} is not a whole "
                f"number from {compat.TASK_MIN_PRIORITY} to "
                f"{compat.TASK_MAX_PRIORITY}. "
                f"Use 100 to run first, -100 to run last, 0 by default."
            )
        if self.queues and task.queue_name not in self.queues:
            known = ", ".join(repr(q) for q in sorted(self.queues))
            raise compat.InvalidTask(
                f"Queue {task.queue_name!r} of task {task.module_path!r} is not "
                f"configured for backend {self.alias!r} (configured: {known}). "
                f"Add it to TASKS[{self.alias!r}]['QUEUES'] or use a configured queue."
            )
        run_after = task.run_after
        if run_after is not None and settings.USE_TZ and timezone.is_naive(run_after):
            raise compat.InvalidTask(
                f"run_after {run_after.isoformat()!r} of task {task.module_path!r} "
                f"is a naive datetime. Pass an aware datetime, such as "
                f"timezone.now() + timedelta(minutes=5)."
            )

    def _validate_policy(self, task: GeartrainTask) -> None:
        name = task.module_path
        problems = []
        if task.max_attempts is not None and (
            isinstance(task.max_attempts, bool)
            or not isinstance(task.max_attempts, int)
            or task.max_attempts < 1
        ):
            problems.append(
                f"max_attempts {task.max_attempts!r} of task {name!r} is not a whole "
                f"number of 1 or more."
            )
        if task.backoff is not None and task.backoff not in BACKOFFS:
            problems.append(
                f"backoff {task.backoff!r} of task {name!r} is not one of "
                f"{', '.join(BACKOFFS)}."
            )
        for field in ("retry_delay", "max_retry_delay"):
            value = getattr(task, field)
            if value is not None and not _is_seconds(value):
                problems.append(
                    f"{field} {value!r} of task {name!r} is not a number of seconds "
                    f">= 0."
                )
        if task.timeout is not None and (
            not _is_seconds(task.timeout) or task.timeout == 0
        ):
            problems.append(
                f"timeout {task.timeout!r} of task {name!r} is not a number of seconds "
                f"> 0. Use None for no limit."
            )
        if task.max_postpones is not None and (
            isinstance(task.max_postpones, bool)
            or not isinstance(task.max_postpones, int)
            or task.max_postpones < 0
        ):
            problems.append(
                f"max_postpones {task.max_postpones!r} of task {name!r} is not a whole "
                f"number of 0 or more."
            )
        if not problems:
            problems.extend(_policy_problems(task))
        if problems:
            raise compat.InvalidTask(" ".join(problems))

    def _check_registered(self, task: compat.AnyTask) -> None:
        path = task.module_path
        if path not in registry or registry.get(path).func is not task.func:
            raise compat.InvalidTask(
                f"Task {path!r} is not registered, so no worker would run it. Define "
                f"it in the 'tasks' module of an installed app, or add its module to "
                f"GEARTRAIN['TASK_MODULES']."
            )

    def enqueue(
        self, task: compat.AnyTask, args: Any, kwargs: Any
    ) -> compat.AnyTaskResult:
        """Insert one job and return its result handle."""
        self.validate_task(task)
        self._check_registered(task)
        job, created = jobs.insert(
            jobs.build_job(task, args, kwargs, backend=self.alias)
        )
        result = jobs.to_task_result(job, task)
        if created:
            compat.task_enqueued.send(type(self), task_result=result)
        return result

    def bulk_enqueue(
        self, task: compat.AnyTask, calls: Iterable[jobs.Call]
    ) -> list[compat.AnyTaskResult]:
        """Insert one job per ``(args, kwargs)`` pair in bulk statements."""
        self.validate_task(task)
        self._check_registered(task)
        fast = jobs.bulk_insert_fast(task, calls, backend=self.alias)
        if fast is not None:
            if compat.task_enqueued.has_listeners(type(self)):
                for result in fast:
                    compat.task_enqueued.send(type(self), task_result=result)
            return fast
        pairs = jobs.bulk_insert(task, calls, backend=self.alias)
        results = [jobs.to_task_result(job, task) for job, _ in pairs]
        if compat.task_enqueued.has_listeners(type(self)):
            for result, (_, created) in zip(results, pairs, strict=True):
                if created:
                    compat.task_enqueued.send(type(self), task_result=result)
        return results

    def get_result(self, result_id: str) -> compat.AnyTaskResult:
        """Read a job back as a ``TaskResult``.

        Raises:
            TaskResultDoesNotExist: no job has this id.
        """
        try:
            job = Job.objects.using(get_settings().DATABASE).get(pk=int(result_id))
        except (Job.DoesNotExist, ValueError, TypeError):
            raise compat.TaskResultDoesNotExist(
                f"No job has the id {result_id!r}."
            ) from None
        return jobs.to_task_result(job)

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        """System checks of this backend's configuration."""
        return list(self._check_queues())

    def _check_queues(self) -> Iterator[checks.CheckMessage]:
        for queue in sorted(self.queues, key=str):
            if not isinstance(queue, str) or not queue or len(queue) > 64:
                yield checks.Error(
                    f"Queue name {queue!r} of task backend {self.alias!r} is not a "
                    f"string of 1 to 64 characters.",
                    hint="Rename the queue in TASKS[...]['QUEUES'].",
                    id="geartrain.E003",
                )


_checked_policies: dict[tuple[Any, ...], list[str]] = {}


def _policy_problems(task: GeartrainTask) -> list[str]:
    """Problems of the task's effective retry policy, cached per set of options.

    Broken settings are left to check geartrain.E002 instead of failing every import.
    """
    key = (
        task.module_path,
        task.max_attempts,
        task.retry_on,
        task.backoff,
        task.retry_delay,
        task.max_retry_delay,
        task.retry_jitter,
    )
    if key not in _checked_policies:
        found: list[str] = []
        if not conf.value_problems(conf.raw_settings()):
            try:
                build_policy(task)
            except ValueError as exc:
                found.append(f"Task {task.module_path!r}: {exc}")
        _checked_policies[key] = found
    return _checked_policies[key]


def clear_policy_checks(**kwargs: Any) -> None:
    """Forget checked policies (``setting_changed`` receiver)."""
    _checked_policies.clear()


def _is_seconds(value: object) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
        and value >= 0
    )


def bulk_enqueue(
    task: compat.AnyTask, calls: Iterable[jobs.Call]
) -> list[compat.AnyTaskResult]:
    """Enqueue many calls of ``task`` at once: ``bulk_enqueue(t, [((1,), {}), ...])``.

    Raises:
        TypeError: when ``task``'s backend is not geartrain's.
    """
    backend = task.get_backend()
    if not isinstance(backend, DatabaseBackend):
        raise TypeError(
            f"bulk_enqueue needs geartrain's DatabaseBackend, but task "
            f"{task.module_path!r} uses backend {task.backend!r} "
            f"({type(backend).__name__})."
        )
    return backend.bulk_enqueue(task, calls)
