"""The one place that knows which Django version is running.

Django 6.x ships the Tasks framework as ``django.tasks``; Django 5.2 LTS gets it from
the
``django-tasks`` backport (0.12), whose exception names carry an ``Error`` suffix. All
of
geartrain imports these names from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import django

HAS_DJANGO_TASKS = django.VERSION >= (6, 0)

# mypy checks against Django 6 (django-stubs); the else branch runs on Django 5.2.
if TYPE_CHECKING or HAS_DJANGO_TASKS:
    from django.tasks import (
        DEFAULT_TASK_BACKEND_ALIAS,
        DEFAULT_TASK_QUEUE_NAME,
        Task,
        TaskContext,
        TaskResult,
        TaskResultStatus,
        task_backends,
    )
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import (
        DEFAULT_TASK_PRIORITY,
        TASK_MAX_PRIORITY,
        TASK_MIN_PRIORITY,
        TaskError,
    )
    from django.tasks.exceptions import (
        InvalidTask,
        TaskResultDoesNotExist,
        TaskResultMismatch,
    )
    from django.tasks.signals import task_enqueued, task_finished, task_started

    TASKS_APP: str | None = None
    TASKS_MODULE = "django.tasks"
    from django.tasks import task
else:  # pragma: no cover - exercised by the Django 5.2 matrix entry
    from django_tasks import (
        DEFAULT_TASK_BACKEND_ALIAS,
        DEFAULT_TASK_QUEUE_NAME,
        TaskContext,
        TaskResult,
        TaskResultStatus,
        task_backends,
    )
    from django_tasks.backends.base import BaseTaskBackend
    from django_tasks.base import (
        DEFAULT_TASK_PRIORITY,
        TASK_MAX_PRIORITY,
        TASK_MIN_PRIORITY,
        Task,
        TaskError,
    )
    from django_tasks.exceptions import InvalidTaskError as InvalidTask
    from django_tasks.exceptions import TaskResultDoesNotExist, TaskResultMismatch
    from django_tasks.signals import task_enqueued, task_finished, task_started

    TASKS_APP = "django_tasks"
    TASKS_MODULE = "django_tasks"
    from django_tasks import task

if TYPE_CHECKING:
    # django-stubs makes Task and TaskResult generic; the runtime classes are not.
    AnyTask = Task[..., Any]
    AnyTaskResult = TaskResult[Any, Any]
else:
    AnyTask = Task
    AnyTaskResult = TaskResult

__all__ = [
    "DEFAULT_TASK_BACKEND_ALIAS",
    "DEFAULT_TASK_PRIORITY",
    "DEFAULT_TASK_QUEUE_NAME",
    "HAS_DJANGO_TASKS",
    "TASKS_APP",
    "TASKS_MODULE",
    "TASK_MAX_PRIORITY",
    "TASK_MIN_PRIORITY",
    "AnyTask",
    "AnyTaskResult",
    "BaseTaskBackend",
    "InvalidTask",
    "Task",
    "TaskContext",
    "TaskError",
    "TaskResult",
    "TaskResultDoesNotExist",
    "TaskResultMismatch",
    "TaskResultStatus",
    "task",
    "task_backends",
    "task_enqueued",
    "task_finished",
    "task_started",
]
