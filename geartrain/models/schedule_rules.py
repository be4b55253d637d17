"""Validation of schedules and of dependencies between them.

Called by the models' ``clean()`` (admin forms, ``full_clean``) and by the code API.
Each message names the bad value, states the rule and says what to do.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError

from geartrain.conf import configured_queues, get_settings
from geartrain.dag import find_cycle
from geartrain.registry import registry
from geartrain.scheduler import cron
from geartrain.scheduler.misfire import CATCH_UP

if TYPE_CHECKING:
    from geartrain.models.schedule import Schedule, ScheduleDependency


def default_time_zone() -> str:
    """Django's ``TIME_ZONE`` when it is a known IANA zone, else ``"UTC"``."""
    name = getattr(settings, "TIME_ZONE", None) or "UTC"
    try:
        cron.zone(name)
    except cron.InvalidTimeZone:
        return "UTC"
    return name


def check_schedule(schedule: Schedule) -> None:
    """Raise ``ValidationError`` (per field) for every problem of ``schedule``."""
    errors: dict[str, list[str]] = {}
    for field, problem in (
        *_timing_problems(schedule),
        *_target_problems(schedule),
        *_policy_problems(schedule),
    ):
        errors.setdefault(field, []).append(problem)
    if errors:
        raise ValidationError(errors)


def _timing_problems(s: Schedule) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    try:
        cron.CronExpression.parse(s.cron)
    except cron.InvalidCronExpression as exc:
        problems.append(("cron", str(exc)))
    try:
        cron.zone(s.timezone)
    except cron.InvalidTimeZone as exc:
        problems.append(("timezone", str(exc)))
    if s.end_at is not None and s.cron_base is not None and s.end_at <= s.cron_base:
        problems.append(
            (
                "end_at",
                f"The end {s.end_at.isoformat()} is not after the start "
                f"{s.cron_base.isoformat()}. Choose a later end, or leave it blank.",
            )
        )
    return problems


def _target_problems(s: Schedule) -> list[tuple[str, str]]:
    if (s.pipeline_id is None) == (not s.task_path):
        return [
            (
                "task_path",
                "A schedule needs exactly one target: a pipeline or a task. "
                "Choose a pipeline, or enter a task, not both.",
            )
        ]
    if not isinstance(s.args, list):
        return [
            (
                "args",
                f"Positional arguments must be a JSON list, not {s.args!r}. "
                'Write them as [1, "two"], or [] for none.',
            )
        ]
    if not isinstance(s.kwargs, dict):
        return [
            (
                "kwargs",
                f"Keyword arguments must be a JSON object, not {s.kwargs!r}. "
                'Write them as {"name": "value"}, or {} for none.',
            )
        ]
    if s.pipeline_id is not None:
        return _pipeline_target_problems(s)
    return _task_target_problems(s)


def _pipeline_target_problems(s: Schedule) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if s.args:
        problems.append(
            (
                "args",
                f"A pipeline takes runtime arguments by name only, so positional "
                f"arguments {s.args!r} cannot be passed. Move them to the keyword "
                "arguments.",
            )
        )
    if s.skip_if_running:
        problems.append(
            (
                "skip_if_running",
                "'Skip while running' applies to task targets only; a pipeline "
                "follows its own overlap rule. Untick it, or change the pipeline's "
                "overlap rule.",
            )
        )
    return problems


def _task_target_problems(s: Schedule) -> list[tuple[str, str]]:
    if s.task_path not in registry:
        return [
            (
                "task_path",
                f"Task {s.task_path!r} is not registered, so no worker would run it. "
                "Pick one of the registered tasks.",
            )
        ]
    problems: list[tuple[str, str]] = []
    task = registry.get(s.task_path)
    signature = inspect.signature(task.func)
    # A takes_context task gets its context first; the schedule passes the rest.
    context = (None,) if getattr(task, "takes_context", False) else ()
    try:
        signature.bind(*context, *s.args, **s.kwargs)
    except TypeError as exc:
        problems.append(
            (
                "kwargs",
                f"The arguments do not fit task {s.task_path!r}{signature}: {exc}. "
                "Change the arguments to match the task's parameters.",
            )
        )
    queues = configured_queues()
    if queues is not None and s.queue not in queues:
        problems.append(
            (
                "queue",
                f"Queue {s.queue!r} is not served by any geartrain task backend. "
                f"Use one of the configured queues: {', '.join(queues)}.",
            )
        )
    return problems


def _policy_problems(s: Schedule) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    # Every target: the table's check constraint holds for pipeline targets too.
    if s.priority is not None and not -100 <= s.priority <= 100:
        problems.append(
            (
                "priority",
                f"Priority {s.priority} is outside -100..100. Use a number from "
                "-100 (last) to 100 (first).",
            )
        )
    if s.misfire != CATCH_UP and s.grace_seconds is None:
        problems.append(
            (
                "grace_seconds",
                f"The misfire policy {s.misfire!r} needs a grace period: how many "
                "seconds late a slot may still run. Enter one, or use catch_up.",
            )
        )
    elif s.catch_up_limit == 0:
        problems.append(
            (
                "catch_up_limit",
                "A catch-up limit of 0 would drop every missed slot. Enter 1 or more, "
                "leave it blank for the default, or use the skip policy.",
            )
        )
    return problems


def check_dependency(dep: ScheduleDependency) -> None:
    """Refuse a non-future self-dependency and any cycle of non-future edges."""
    from geartrain.models.schedule import ScheduleDependency

    if dep.depender_id is None or dep.dependee_id is None:
        return
    if dep.depender_id == dep.dependee_id:
        if dep.future:
            return
        raise ValidationError(
            {
                "future": f"Schedule {dep.depender.name!r} cannot depend on itself "
                "unless the dependency is 'future only' (wait for its own previous "
                "run). Tick 'future only', or choose another schedule."
            }
        )
    if dep.future:
        return  # future edges never close a cycle
    rows = (
        ScheduleDependency.objects.using(get_settings().DATABASE)
        .filter(future=False)
        .exclude(pk=dep.pk)
    )
    edges: dict[str, set[str]] = {}
    for depender, dependee in rows.values_list("depender__name", "dependee__name"):
        edges.setdefault(depender, set()).add(dependee)
    edges.setdefault(dep.depender.name, set()).add(dep.dependee.name)
    cycle = find_cycle(edges)
    if cycle is not None:
        path = " -> ".join(repr(name) for name in cycle)
        raise ValidationError(
            {
                "dependee": f"This dependency creates a cycle: {path}. A schedule "
                "cannot wait, even indirectly, for itself. Remove one of the "
                "dependencies, or make this one 'future only'."
            }
        )
