"""Run one claimed job's task function and capture what happened. No database writes.

This is the only place where user code runs. It is called outside any transaction.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import traceback
from datetime import datetime
from typing import Any, Literal

from django.utils import timezone

from geartrain import compat, serialization
from geartrain.exceptions import Postpone
from geartrain.models import Job
from geartrain.registry import registry

Kind = Literal["succeeded", "error", "postpone"]


@dataclasses.dataclass(slots=True, kw_only=True)
class Outcome:
    """What one attempt produced."""

    kind: Kind
    started_at: datetime
    finished_at: datetime
    return_value: Any = None
    error: BaseException | None = None
    error_class: str = ""
    message: str = ""
    traceback: str = ""
    postpone_seconds: float | None = None


def class_path(cls: type[BaseException]) -> str:
    """Dotted path of an exception class, as Django's ``TaskError`` stores it."""
    return f"{cls.__module__}.{cls.__qualname__}"


def _call(task: compat.AnyTask, job: Job, result: compat.AnyTaskResult | None) -> Any:
    args = list(job.args)
    if task.takes_context:
        context: Any = compat.TaskContext(task_result=result)  # type: ignore[arg-type]
        args.insert(0, context)
    func = task.func
    if inspect.iscoroutinefunction(func):
        return asyncio.run(func(*args, **job.kwargs))
    return func(*args, **job.kwargs)


def execute(job: Job, result: compat.AnyTaskResult | None) -> Outcome:
    """Run ``job``'s task; never raises (except KeyboardInterrupt/SystemExit)."""
    started = timezone.now()
    try:
        task = registry.get(job.task_path)
        raw = _call(task, job, result)
        value = serialization.check_return_value(job.task_path, raw)
    except Postpone as postpone:
        return Outcome(
            kind="postpone",
            started_at=started,
            finished_at=timezone.now(),
            postpone_seconds=postpone.seconds,
        )
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        return Outcome(
            kind="error",
            started_at=started,
            finished_at=timezone.now(),
            error=exc,
            error_class=class_path(type(exc)),
            message=str(exc),
            traceback="".join(traceback.format_exception(exc)),
        )
    return Outcome(
        kind="succeeded",
        started_at=started,
        finished_at=timezone.now(),
        return_value=value,
    )
