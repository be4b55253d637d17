"""Error handlers of pipeline steps.

The default handler stores a :class:`~geartrain.models.StepError` (type, message,
traceback, step run, time). A custom handler is registered with
:func:`error_handler` and named on a step by its dotted path; it is called with
``(error)``, or ``(error, step_run)`` when it takes two parameters. A handler that
raises is logged and never breaks the run.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable
from typing import Any

from geartrain.conf import get_settings
from geartrain.models import StepError, StepRun

logger = logging.getLogger(__name__)

Handler = Callable[..., Any]
_handlers: dict[str, Handler] = {}
_lock = threading.Lock()


def error_handler(func: Handler) -> Handler:
    """Register ``func`` as an error handler under ``module.function``."""
    path = f"{func.__module__}.{func.__qualname__}"
    with _lock:
        known = _handlers.get(path)
        if known is not None and known is not func:
            raise ValueError(
                f"Two different functions are registered as error handler {path!r}. "
                f"Give one of them another name or module."
            )
        _handlers[path] = func
    return func


def registered() -> list[str]:
    """Paths of the registered error handlers."""
    return sorted(_handlers)


def default_handler(
    error: BaseException, step_run: StepRun, details: dict[str, str]
) -> None:
    """Store the error of ``step_run``."""
    StepError.objects.using(get_settings().DATABASE).create(
        step_run=step_run,
        error_type=details.get("error_class") or type(error).__qualname__,
        message=details.get("message", str(error)),
        traceback=details.get("traceback", ""),
    )


def handle(step_run_id: int, error: BaseException, details: dict[str, str]) -> None:
    """Call the step's error handler (or the default one); never raises."""
    try:
        step_run = StepRun.objects.using(get_settings().DATABASE).get(pk=step_run_id)
        custom = (
            _handlers.get(step_run.error_handler) if step_run.error_handler else None
        )
        if step_run.error_handler and custom is None:
            logger.error(
                "Error handler %s of step %s is not registered; using the default",
                step_run.error_handler,
                step_run.step_name,
            )
        if custom is None:
            default_handler(error, step_run, details)
        elif len(inspect.signature(custom).parameters) >= 2:
            custom(error, step_run)
        else:
            custom(error)
    except Exception:
        logger.exception("Error handler failed for step run id=%s", step_run_id)
