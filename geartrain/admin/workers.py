"""The worker admin: which workers are alive and what they run. Read-only."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin
from django.db.models import (
    CharField,
    Count,
    IntegerField,
    OuterRef,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce, Concat
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from geartrain.admin.base import ReadOnlyAdmin
from geartrain.admin.display import format_seconds
from geartrain.conf import get_settings
from geartrain.models import Job, JobStatus, WorkerProcess


def alive_grace() -> float:
    """Seconds without a heartbeat after which a worker counts as dead."""
    return 3 * get_settings().HEARTBEAT_INTERVAL


class AliveFilter(admin.SimpleListFilter):
    """Alive: a heartbeat within three heartbeat intervals."""

    title = _("alive")
    parameter_name = "alive"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> list[tuple[str, Any]]:
        return [("yes", _("Yes")), ("no", _("No"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        since = timezone.now() - timedelta(seconds=alive_grace())
        if self.value() == "yes":
            return queryset.filter(last_heartbeat_at__gte=since)
        if self.value() == "no":
            return queryset.filter(last_heartbeat_at__lt=since)
        return queryset


def _running_jobs_subquery() -> Subquery:
    """Count of running jobs leased by a worker's children (``<worker id>/<pid>``)."""
    prefix = Concat(OuterRef("id"), Value("/"), output_field=CharField())
    jobs = (
        Job.objects.filter(status=JobStatus.RUNNING, lease_owner__startswith=prefix)
        .order_by()
        .values("status")
        .annotate(n=Count("id"))
        .values("n")
    )
    return Subquery(jobs, output_field=IntegerField())


class WorkerProcessAdmin(ReadOnlyAdmin[WorkerProcess]):
    """Workers: alive or not, heartbeat age, and the jobs they run now."""

    list_display = (
        "id",
        "hostname",
        "pid",
        "queue_list",
        "concurrency",
        "started_at",
        "heartbeat",
        "alive",
        "stopping",
        "running_jobs",
    )
    list_filter = (AliveFilter, "stopping", "hostname")
    search_fields = ("id", "hostname")
    ordering = ("-last_heartbeat_at",)
    fields = (
        "id",
        "hostname",
        "pid",
        "queue_list",
        "concurrency",
        "started_at",
        "last_heartbeat_at",
        "heartbeat",
        "alive",
        "stopping",
        "running_jobs",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[WorkerProcess]:
        return (
            super()
            .get_queryset(request)
            .using(get_settings().DATABASE)
            .annotate(running_count=Coalesce(_running_jobs_subquery(), 0))
        )

    @admin.display(description=_("queues"))
    def queue_list(self, obj: WorkerProcess) -> str:
        queues = obj.queues if isinstance(obj.queues, list) else [obj.queues]
        return ", ".join(str(q) for q in queues) or "-"

    @admin.display(description=_("last heartbeat"), ordering="last_heartbeat_at")
    def heartbeat(self, obj: WorkerProcess) -> str:
        age = (timezone.now() - obj.last_heartbeat_at).total_seconds()
        return _("%(age)s ago") % {"age": format_seconds(age)}

    @admin.display(description=_("alive"), boolean=True)
    def alive(self, obj: WorkerProcess) -> bool:
        return obj.is_alive(grace=alive_grace())

    @admin.display(description=_("running jobs"), ordering="running_count")
    def running_jobs(self, obj: WorkerProcess) -> SafeString | int:
        count = int(getattr(obj, "running_count", 0) or 0)
        if not count:
            return 0
        url = reverse(
            "admin:geartrain_job_changelist", current_app=self.admin_site.name
        )
        query = urlencode({"status__exact": JobStatus.RUNNING.value, "worker": obj.pk})
        return format_html('<a href="{}?{}">{}</a>', url, query, count)
