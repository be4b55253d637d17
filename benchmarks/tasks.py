"""The benchmark's tasks: no work, so what is measured is the queue's own cost."""

from __future__ import annotations

import time

from geartrain.compat import HAS_DJANGO_TASKS

if HAS_DJANGO_TASKS:
    from django.tasks import task
else:  # Django 5.2 with the django-tasks backport
    from django_tasks import task  # type: ignore[no-redef]


@task
def noop() -> None:
    return None


@task
def stamp() -> float:
    """The wall time at which the job started, for enqueue-to-start latency."""
    return time.time()
