"""Fixture tasks for the test suite."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from geartrain.compat import HAS_DJANGO_TASKS, TaskContext

if HAS_DJANGO_TASKS:
    from django.tasks import task
else:  # Django 5.2 with the django-tasks backport
    from django_tasks import task

from geartrain import Postpone
from geartrain import task as gt_task


def _mark(name: str, value: Any) -> None:
    """Append a line to a marker file in $GEARTRAIN_MARKS (subprocess tests)."""
    folder = os.environ.get("GEARTRAIN_MARKS")
    if folder:
        with Path(folder, name).open("a") as fh:
            fh.write(f"{value}\n")


@task
def noop() -> None:
    return None


@task
def add(a: int, b: int) -> int:
    return a + b


@task(queue_name="emails", priority=5)
def send_email(to: str, subject: str = "hi") -> dict[str, str]:
    return {"to": to, "subject": subject}


@task
def record(key: str) -> str:
    _mark("record", key)
    return key


@task
def sleep_then_record(key: str, seconds: float) -> str:
    _mark("started", key)
    time.sleep(seconds)
    _mark("record", key)
    return key


@task
def fail(message: str = "boom") -> None:
    raise ValueError(message)


@gt_task(max_attempts=3, retry_on=(ConnectionError,), backoff="constant", retry_delay=0)
def flaky(key: str, failures: int) -> str:
    """Fails with ConnectionError ``failures`` times (counted in a marker file)."""
    folder = os.environ.get("GEARTRAIN_MARKS", tempfile.gettempdir())
    path = Path(folder, f"flaky-{key}")
    seen = int(path.read_text()) if path.exists() else 0
    path.write_text(str(seen + 1))
    if seen < failures:
        raise ConnectionError(f"attempt {seen + 1} failed")
    return key


@gt_task(max_attempts=5, retry_on=(ConnectionError,))
def type_error() -> None:
    raise TypeError("not retried")


@gt_task(max_postpones=2)
def postpone_always() -> None:
    raise Postpone(0)


@task(takes_context=True)
def postpone_then_succeed(context: TaskContext, times: int) -> int:
    folder = os.environ.get("GEARTRAIN_MARKS", tempfile.gettempdir())
    path = Path(folder, f"postpone-{context.task_result.id}")
    seen = int(path.read_text()) if path.exists() else 0
    path.write_text(str(seen + 1))
    if seen < times:
        raise Postpone(0)
    return seen


@task
def not_json() -> object:
    return {"when": object()}


@task
async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


@task(takes_context=True)
def attempt_number(context: TaskContext) -> int:
    return context.attempt


@gt_task(timeout=0.5, max_attempts=1)
def too_slow() -> None:
    time.sleep(30)


@gt_task(unique=True)
def unique_report(day: str) -> str:
    return day


# Pipeline fixtures -------------------------------------------------------------------


@task
def step_record(key: str, seconds: float = 0.0, fail: bool = False) -> str:
    """A pipeline step: waits, records its key, optionally fails."""
    _mark("started", key)
    if seconds:
        time.sleep(seconds)
    if fail:
        raise RuntimeError(f"step {key} failed")
    _mark("record", key)
    return key


@task
def step_with_kwargs(key: str, **extra: object) -> dict[str, object]:
    """A pipeline step that accepts any runtime argument."""
    return {"key": key, **extra}


@task(takes_context=True)
def step_sum_upstream(context: TaskContext) -> int:
    """Adds up the numeric results of every upstream step."""
    from geartrain.pipelines.context import upstream_results

    found = upstream_results(context)
    return sum(
        v for steps in found.values() for v in steps.values() if isinstance(v, int)
    )


@task
def step_number(n: int) -> int:
    return n


@task
def step_args(a: int = 0, b: int = 0, c: int = 0) -> dict[str, int]:
    return {"a": a, "b": b, "c": c}


from geartrain.pipelines.errors import error_handler  # noqa: E402


@error_handler
def handler_one(error: BaseException) -> None:
    _mark("handled", f"one:{type(error).__name__}")


@error_handler
def handler_two(error: BaseException, step_run: object) -> None:
    _mark("handled", f"two:{getattr(step_run, 'step_name', '?')}")


@error_handler
def handler_that_raises(error: BaseException) -> None:
    raise RuntimeError("the handler itself failed")
