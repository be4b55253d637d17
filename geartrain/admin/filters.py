"""Sidebar filters of the job admin that never scan the jobs table.

A ``SELECT DISTINCT`` over a big jobs table on every page load is what makes admins
slow, so the choices come from configuration instead: task paths from the task
registry, queues and backends from ``TASKS``, workers from the workers table. A value
that is no longer configured can still be filtered on (it stays in the URL and is
listed while selected).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from geartrain.conf import get_settings
from geartrain.models import WorkerProcess
from geartrain.registry import registry

MAX_CHOICES = 200


def geartrain_backends() -> dict[str, dict[str, Any]]:
    """``TASKS`` entries served by geartrain, by alias."""
    tasks = getattr(settings, "TASKS", None) or {}
    return {
        alias: options
        for alias, options in tasks.items()
        if str(options.get("BACKEND", "")).startswith("geartrain.")
    }


class ExactValueFilter(admin.SimpleListFilter):
    """Filters ``field`` on an exact value; subclasses list the choices."""

    field = ""

    def values(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> Iterable[str]:
        raise NotImplementedError

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> list[tuple[str, str]]:
        values: list[str] = sorted({str(v) for v in self.values(request, model_admin)})
        values = values[:MAX_CHOICES]
        selected = self.value()
        if selected and selected not in values:
            values.insert(0, selected)
        return [(v, v) for v in values]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(**{self.field: value}) if value else queryset


class TaskPathFilter(ExactValueFilter):
    """Registered tasks (only registered tasks can run, so jobs name these)."""

    title = _("task")
    parameter_name = field = "task_path"

    def values(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> Iterable[str]:
        return registry.paths()


class QueueFilter(ExactValueFilter):
    """Queues named in ``TASKS[...]['QUEUES']``.

    A geartrain backend with ``QUEUES = []`` accepts any queue; only then are the
    queues read from the table.
    """

    title = _("queue")
    parameter_name = field = "queue"

    def values(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> Iterable[str]:
        queues: set[str] = set()
        for options in geartrain_backends().values():
            configured = options.get("QUEUES", ["default"])
            if not configured:
                return (
                    model_admin.get_queryset(request)
                    .order_by("queue")
                    .values_list("queue", flat=True)
                    .distinct()[:MAX_CHOICES]
                )
            queues.update(configured)
        return queues


class BackendFilter(ExactValueFilter):
    """``TASKS`` aliases served by geartrain."""

    title = _("backend")
    parameter_name = field = "backend"

    def values(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> Iterable[str]:
        return geartrain_backends().keys()


class WorkerFilter(ExactValueFilter):
    """Jobs leased by one worker (``lease_owner`` is ``<worker id>/<child pid>``).

    Lists the live workers; the worker admin links here for any worker.
    """

    title = _("worker")
    parameter_name = "worker"

    def values(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> Iterable[str]:
        conf = get_settings()
        since = timezone.now() - timedelta(seconds=3 * conf.HEARTBEAT_INTERVAL)
        return (
            WorkerProcess.objects.using(conf.DATABASE)
            .filter(last_heartbeat_at__gte=since)
            .order_by("id")
            .values_list("id", flat=True)[:MAX_CHOICES]
        )

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value:
            return queryset
        return queryset.filter(lease_owner__startswith=f"{value}/")
