"""The ``GEARTRAIN`` setting: one dict, read once into a frozen dataclass.

Unknown keys and bad values are reported by system checks (``geartrain.E001`` and
``geartrain.E002``), never by an exception at import time. The cached value is dropped
when Django's ``setting_changed`` fires for ``GEARTRAIN`` (tests use
``override_settings``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any, cast

from django.conf import settings as django_settings

BACKOFF_STRATEGIES = ("constant", "incremental", "exponential")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Effective geartrain settings; see docs/reference/settings.md."""

    DATABASE: str = "default"
    """Database alias that holds geartrain's tables."""
    TASK_MODULES: tuple[str, ...] = ()
    """Extra modules to import for tasks, besides each installed app's ``tasks``."""
    MAX_ATTEMPTS: int = 3
    """Attempts a job gets before it fails (errors, lost workers and timeouts count)."""
    RETRY_ON: tuple[str, ...] = ("builtins.Exception",)
    """Exception classes (dotted paths) that are retried while attempts remain."""
    BACKOFF: str = "exponential"
    """Delay strategy between attempts: constant, incremental or exponential."""
    RETRY_DELAY: float = 2.0
    """Base delay in seconds between attempts."""
    MAX_RETRY_DELAY: float = 300.0
    """Upper bound of the delay between attempts, in seconds."""
    RETRY_JITTER: bool = True
    """Spread retries: the delay is drawn between half and all of the computed value."""
    MAX_POSTPONES: int | None = 20
    """How often a job may ``raise Postpone``; ``None`` means without limit."""
    POSTPONE_DELAY: float = 5.0
    """Delay of ``Postpone()`` without an argument, in seconds."""
    TIMEOUT: float | None = None
    """Default hard time limit of a job in seconds; ``None`` means no limit."""
    LEASE_SECONDS: float = 30.0
    """How long a claimed job is reserved without a heartbeat."""
    HEARTBEAT_INTERVAL: float = 10.0
    """How often a worker renews its leases and its registration."""
    REAP_INTERVAL: float = 10.0
    """How often a worker returns jobs whose lease expired."""
    POLL_INTERVAL: float = 0.1
    """Idle poll interval (PostgreSQL also wakes on NOTIFY).

    On SQLite and MariaDB/MySQL it bounds the wait of a new job: about half of it on
    average. An idle poll is two indexed queries.
    """
    CLAIM_BATCH_SIZE: int = 32
    """Most jobs a worker child claims at once when jobs are short."""
    SHUTDOWN_TIMEOUT: float = 30.0
    """Grace period of the first SIGTERM/SIGINT before running jobs are killed."""
    WORKER_FORGET_AFTER: float = 3600.0
    """Seconds after its last heartbeat when a dead worker's registration is deleted."""
    OVERLAP_FAILED: bool = False
    """Let a pipeline launch while its latest run failed (not resumed or dismissed)."""
    AUTO_WEIGHT: bool = True
    """Recompute each step's weight from its recent durations after a run."""
    WEIGHT_SAMPLE_SIZE: int = 10
    """How many recent runs of a step its weight averages."""
    SCHEDULER_INTERVAL: float = 60.0
    """Longest a scheduler sleeps between two ticks, in seconds."""
    CATCH_UP_LIMIT: int = 100
    """Most missed slots one schedule catches up at once (misfire policy catch_up)."""
    DEPENDENCY_RECHECK: float = 10.0
    """How often a slot held by a running dependency is checked again, in seconds."""
    SCHEDULER_BATCH_SIZE: int = 100
    """Due schedules one scheduler handles per transaction."""


_TYPES: dict[str, tuple[type, ...]] = {
    "DATABASE": (str,),
    "TASK_MODULES": (list, tuple),
    "MAX_ATTEMPTS": (int,),
    "RETRY_ON": (list, tuple),
    "BACKOFF": (str,),
    "RETRY_DELAY": (int, float),
    "MAX_RETRY_DELAY": (int, float),
    "RETRY_JITTER": (bool,),
    "MAX_POSTPONES": (int, type(None)),
    "POSTPONE_DELAY": (int, float),
    "TIMEOUT": (int, float, type(None)),
    "LEASE_SECONDS": (int, float),
    "HEARTBEAT_INTERVAL": (int, float),
    "REAP_INTERVAL": (int, float),
    "POLL_INTERVAL": (int, float),
    "CLAIM_BATCH_SIZE": (int,),
    "SHUTDOWN_TIMEOUT": (int, float),
    "WORKER_FORGET_AFTER": (int, float),
    "OVERLAP_FAILED": (bool,),
    "AUTO_WEIGHT": (bool,),
    "WEIGHT_SAMPLE_SIZE": (int,),
    "SCHEDULER_INTERVAL": (int, float),
    "CATCH_UP_LIMIT": (int,),
    "DEPENDENCY_RECHECK": (int, float),
    "SCHEDULER_BATCH_SIZE": (int,),
}
_POSITIVE = {
    "MAX_ATTEMPTS",
    "LEASE_SECONDS",
    "HEARTBEAT_INTERVAL",
    "REAP_INTERVAL",
    "POLL_INTERVAL",
    "CLAIM_BATCH_SIZE",
    "WORKER_FORGET_AFTER",
    "WEIGHT_SAMPLE_SIZE",
    "SCHEDULER_INTERVAL",
    "CATCH_UP_LIMIT",
    "DEPENDENCY_RECHECK",
    "SCHEDULER_BATCH_SIZE",
}
_NON_NEGATIVE = {
    "RETRY_DELAY",
    "MAX_RETRY_DELAY",
    "POSTPONE_DELAY",
    "SHUTDOWN_TIMEOUT",
    "MAX_POSTPONES",
}


BACKEND_PATH = "geartrain.backends.DatabaseBackend"


def configured_queues() -> list[str] | None:
    """Queues declared by geartrain task backends; ``None`` when any is unrestricted."""
    queues: set[str] = set()
    for params in getattr(django_settings, "TASKS", {}).values():
        if params.get("BACKEND") != BACKEND_PATH:
            continue
        declared = params.get("QUEUES", ["default"])
        if not declared:
            return None
        queues.update(declared)
    return sorted(queues) or ["default"]


def raw_settings() -> Mapping[str, Any]:
    """Return the user's ``GEARTRAIN`` dict (empty when unset)."""
    value = getattr(django_settings, "GEARTRAIN", {})
    return value if isinstance(value, Mapping) else {}


def unknown_keys(raw: Mapping[str, Any]) -> list[str]:
    """Keys of ``raw`` that geartrain does not know."""
    return sorted(k for k in raw if k not in _TYPES)


def value_problems(raw: Mapping[str, Any]) -> list[str]:
    """One sentence per bad value in ``raw`` (types, ranges, coherence)."""
    problems = []
    for key, value in raw.items():
        if key not in _TYPES:
            continue
        problem = _value_problem(key, value)
        if problem:
            problems.append(problem)
    if not problems:
        problems.extend(_coherence_problems(get_settings_from(raw)))
    return problems


def _value_problem(key: str, value: Any) -> str | None:
    types = _TYPES[key]
    if isinstance(value, bool) and bool not in types:
        return _type_message(key, value, types)
    if not isinstance(value, types):
        return _type_message(key, value, types)
    if value is None or isinstance(value, list | tuple | str | bool):
        if key in ("RETRY_ON", "TASK_MODULES") and isinstance(value, list | tuple):
            return _paths_problem(key, value)
        if key == "BACKOFF" and value not in BACKOFF_STRATEGIES:
            return (
                f"GEARTRAIN['BACKOFF'] is {value!r}; it must be one of "
                f"{', '.join(BACKOFF_STRATEGIES)}."
            )
        return None
    number = float(cast(float, value))
    if not math.isfinite(number):
        return f"GEARTRAIN[{key!r}] is {value!r}; it must be a finite number."
    if key in _POSITIVE and number <= 0:
        return f"GEARTRAIN[{key!r}] is {value!r}; it must be greater than 0."
    if key in _NON_NEGATIVE and number < 0:
        return f"GEARTRAIN[{key!r}] is {value!r}; it must be 0 or greater."
    if key == "TIMEOUT" and number <= 0:
        return (
            f"GEARTRAIN['TIMEOUT'] is {value!r}; it must be greater than 0, "
            f"or None for no limit."
        )
    return None


def _paths_problem(key: str, value: list[Any] | tuple[Any, ...]) -> str | None:
    for entry in value:
        if not isinstance(entry, str) or not entry:
            return (
                f"GEARTRAIN[{key!r}] contains {entry!r}; it must list dotted paths "
                f"as strings."
            )
    if key == "RETRY_ON":
        from geartrain.tasks import resolve_exception

        for entry in value:
            try:
                resolve_exception(entry)
            except ValueError as exc:
                return f"GEARTRAIN['RETRY_ON']: {exc}"
    return None


def _type_message(key: str, value: Any, types: tuple[type, ...]) -> str:
    names = " or ".join("None" if t is type(None) else t.__name__ for t in types)
    return (
        f"GEARTRAIN[{key!r}] is {value!r} ({type(value).__name__}); "
        f"it must be of type {names}."
    )


def _coherence_problems(conf: Settings) -> list[str]:
    problems = []
    if conf.HEARTBEAT_INTERVAL >= conf.LEASE_SECONDS:
        problems.append(
            f"GEARTRAIN['HEARTBEAT_INTERVAL'] ({conf.HEARTBEAT_INTERVAL!r}) must be "
            f"shorter than GEARTRAIN['LEASE_SECONDS'] ({conf.LEASE_SECONDS!r}), or "
            f"leases expire while their jobs still run."
        )
    if conf.MAX_RETRY_DELAY < conf.RETRY_DELAY:
        problems.append(
            f"GEARTRAIN['MAX_RETRY_DELAY'] ({conf.MAX_RETRY_DELAY!r}) must not be "
            f"smaller than GEARTRAIN['RETRY_DELAY'] ({conf.RETRY_DELAY!r})."
        )
    return problems


def get_settings_from(raw: Mapping[str, Any]) -> Settings:
    """Build :class:`Settings` from a raw dict, ignoring unknown keys."""
    known = {k: v for k, v in raw.items() if k in _TYPES}
    for key in ("TASK_MODULES", "RETRY_ON"):
        if isinstance(known.get(key), list):
            known[key] = tuple(known[key])
    return Settings(**known)


@functools.cache
def get_settings() -> Settings:
    """Return the effective settings (cached until ``GEARTRAIN`` changes)."""
    return get_settings_from(raw_settings())


def clear_cache(*, setting: str, **kwargs: Any) -> None:
    """``setting_changed`` receiver that drops the cached settings."""
    if setting == "GEARTRAIN":
        get_settings.cache_clear()
