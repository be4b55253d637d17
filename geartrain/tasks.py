"""geartrain's task class and decorator.

``GeartrainTask`` is Django's ``Task`` plus per-task policy: retries, back-off,
postpones,
timeout and uniqueness. On Django 6.1 (and with the django-tasks backport)
``@task(...)``
passes extra keyword arguments to the backend's ``task_class``, so::

    from django.tasks import task

    @task(max_attempts=5, backoff="exponential", timeout=60)
    def send_invoice(invoice_id: int) -> None: ...

works unchanged. :func:`geartrain.task` is the same decorator for every supported Django
version, and the one to use on Django 6.0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, overload

from django.utils.module_loading import import_string

from geartrain import compat
from geartrain.conf import get_settings
from geartrain.retry import RetryPolicy


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class GeartrainTask(compat.Task):  # type: ignore[type-arg]
    """A Django task with geartrain's per-task options (``None`` = the setting)."""

    max_attempts: int | None = None
    """Attempts before the job fails; default ``GEARTRAIN['MAX_ATTEMPTS']``."""
    retry_on: tuple[type[BaseException] | str, ...] | None = None
    """Exception classes or dotted paths that are retried."""
    backoff: str | None = None
    """``constant``, ``incremental`` or ``exponential``."""
    retry_delay: float | None = None
    """Base delay between attempts in seconds."""
    max_retry_delay: float | None = None
    """Cap of the delay between attempts in seconds."""
    retry_jitter: bool | None = None
    """Whether retry delays are spread randomly."""
    max_postpones: int | None = None
    """How often the task may postpone itself; default
    ``GEARTRAIN['MAX_POSTPONES']``."""
    timeout: float | None = None
    """Hard time limit in seconds; the worker child running it is ended past it."""
    unique: bool = False
    """While a job with the same arguments waits, enqueueing returns that job."""


_policies: dict[tuple[str, int], RetryPolicy] = {}


def retry_policy(task: compat.AnyTask | None) -> RetryPolicy:
    """The effective :class:`RetryPolicy` of ``task`` (settings fill the gaps).

    ``task=None`` gives the settings' defaults (for jobs of unregistered tasks).
    """
    key = ("", 0) if task is None else (task.module_path, id(task))
    cached = _policies.get(key)
    if cached is not None:
        return cached
    policy = build_policy(task)
    _policies[key] = policy
    return policy


def resolve_exception(entry: type[BaseException] | str) -> type[BaseException]:
    """An exception class from a class or its dotted path.

    Raises:
        ValueError: naming the entry, when it is not an exception class.
    """
    cls: object = entry
    if isinstance(entry, str):
        try:
            cls = import_string(entry)
        except ImportError:
            raise ValueError(
                f"retry_on entry {entry!r} cannot be imported. Use the dotted path of "
                f"an exception class, such as 'builtins.ConnectionError'."
            ) from None
    if not (isinstance(cls, type) and issubclass(cls, BaseException)):
        raise ValueError(
            f"retry_on entry {entry!r} is not an exception class. List exception "
            f"classes or their dotted paths, such as 'builtins.ConnectionError'."
        )
    return cls


def build_policy(task: compat.AnyTask | None) -> RetryPolicy:
    """Build the :class:`RetryPolicy` of ``task`` without caching.

    Raises:
        ValueError: when an option, or its combination with the settings, is invalid.
    """
    conf = get_settings()
    opts = task if isinstance(task, GeartrainTask) else None

    def pick(name: str, default: Any) -> Any:
        value = getattr(opts, name, None) if opts is not None else None
        return default if value is None else value

    entries = pick("retry_on", conf.RETRY_ON)
    if isinstance(entries, str) or not isinstance(entries, tuple | list):
        raise ValueError(
            f"retry_on {entries!r} is not a tuple. Give a tuple of exception classes "
            f"or dotted paths, such as (ConnectionError,)."
        )
    retry_on = tuple(resolve_exception(entry) for entry in entries)
    return RetryPolicy(
        max_attempts=pick("max_attempts", conf.MAX_ATTEMPTS),
        retry_on=retry_on,
        backoff=pick("backoff", conf.BACKOFF),
        delay=float(pick("retry_delay", conf.RETRY_DELAY)),
        max_delay=float(pick("max_retry_delay", conf.MAX_RETRY_DELAY)),
        jitter=pick("retry_jitter", conf.RETRY_JITTER),
    )


def clear_policy_cache(**kwargs: Any) -> None:
    """Forget computed policies (``setting_changed`` receiver)."""
    _policies.clear()


def max_postpones(task: compat.AnyTask) -> int | None:
    """The postpone limit of ``task`` (``None`` = unlimited)."""
    value = getattr(task, "max_postpones", None)
    return get_settings().MAX_POSTPONES if value is None else int(value)


def timeout(task: compat.AnyTask) -> float | None:
    """The hard time limit of ``task`` in seconds, or ``None``."""
    value = getattr(task, "timeout", None)
    return get_settings().TIMEOUT if value is None else float(value)


@overload
def task(function: Callable[..., Any], /) -> compat.AnyTask: ...


@overload
def task(
    *,
    priority: int = ...,
    queue_name: str = ...,
    backend: str = ...,
    takes_context: bool = ...,
    **options: Any,
) -> Callable[[Callable[..., Any]], compat.AnyTask]: ...


def task(
    function: Callable[..., Any] | None = None,
    /,
    *,
    priority: int = compat.DEFAULT_TASK_PRIORITY,
    queue_name: str = compat.DEFAULT_TASK_QUEUE_NAME,
    backend: str = compat.DEFAULT_TASK_BACKEND_ALIAS,
    takes_context: bool = False,
    **options: Any,
) -> compat.AnyTask | Callable[[Callable[..., Any]], compat.AnyTask]:
    """Make ``function`` a task run by geartrain, with optional per-task policy.

    Accepts Django's ``@task`` arguments plus the fields of :class:`GeartrainTask`.
    """

    def wrapper(func: Callable[..., Any]) -> compat.AnyTask:
        task_class = compat.task_backends[backend].task_class
        if options and not issubclass(task_class, GeartrainTask):
            raise TypeError(
                f"Task backend {backend!r} is not geartrain's, so it does not take the "
                f"options {', '.join(sorted(options))}. Set TASKS[{backend!r}]"
                f"['BACKEND'] to 'geartrain.backends.DatabaseBackend'."
            )
        created: compat.AnyTask = task_class(
            func=func,
            priority=priority,
            queue_name=queue_name,
            backend=backend,
            takes_context=takes_context,
            **options,
        )
        return created

    if function is not None:
        return wrapper(function)
    return wrapper
