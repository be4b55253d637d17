"""The job admin: a read-only view of the queue, with "retry" and "cancel".

Jobs tables get big, so the changelist never counts the whole table (no full result
count, no facets, a capped page count) and does not load the JSON columns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, cast

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from geartrain.admin import actions
from geartrain.admin.base import ReadOnlyAdmin
from geartrain.admin.display import (
    attempt_rows,
    format_seconds,
    pretty_json,
    status_badge,
)
from geartrain.admin.filters import (
    BackendFilter,
    QueueFilter,
    TaskPathFilter,
    WorkerFilter,
)
from geartrain.conf import get_settings
from geartrain.models import Job
from geartrain.models.job import FINISHED, WAITING

BIG_COLUMNS = ("args", "kwargs", "attempt_log", "return_value")
MAX_RETRY_LINKS = 50

if TYPE_CHECKING:  # Paginator is generic only in django-stubs
    _PaginatorBase = Paginator[Job]
else:
    _PaginatorBase = Paginator


class CappedPaginator(_PaginatorBase):
    """Counts at most ``cap`` rows; the changelist says "more than …" beyond that."""

    cap = 10_000
    capped = False

    @cached_property
    def count(self) -> int:
        # COUNT(*) over a LIMITed subquery: bounded work on any table size.
        rows = cast("QuerySet[Job]", self.object_list)
        found = rows[: self.cap + 1].count()
        self.capped = found > self.cap
        return min(found, self.cap)


class JobChangeList(ChangeList):
    """Leaves the JSON columns out of the list; actions reload what they need."""

    def get_queryset(
        self, request: HttpRequest, exclude_parameters: list[str | None] | None = None
    ) -> QuerySet[Any]:
        return super().get_queryset(request, exclude_parameters).defer(*BIG_COLUMNS)


class JobAdmin(ReadOnlyAdmin[Job]):
    """Jobs: list, filters, search, a read-only detail page with every attempt."""

    list_display = (
        "id",
        "task_path",
        "queue",
        "status_badge",
        "priority",
        "attempts",
        "enqueued_at",
        "started_at",
        "finished_at",
        "duration",
    )
    list_display_links = ("id", "task_path")
    list_filter = ("status", QueueFilter, TaskPathFilter, BackendFilter, WorkerFilter)
    search_fields = ("task_path",)
    search_help_text = _("A job id (digits), or part of a task path.")
    date_hierarchy = "enqueued_at"
    ordering = ("-id",)
    list_per_page = 50
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = CappedPaginator
    actions = (actions.retry_selected, actions.cancel_selected)
    fieldsets = (
        (None, {"fields": ("id", "task_path", "status_badge", "queue", "priority")}),
        (_("Call"), {"fields": ("args_json", "kwargs_json", "backend", "unique_key")}),
        (
            _("Times"),
            {
                "fields": (
                    "enqueued_at",
                    "run_after",
                    "started_at",
                    "last_attempted_at",
                    "finished_at",
                    "duration",
                )
            },
        ),
        (_("Lease"), {"fields": ("lease_owner", "lease_expires_at")}),
        (_("Retries"), {"fields": ("retried_from_link", "retries_links")}),
        (_("Result"), {"fields": ("attempts", "postpones", "return_value_json")}),
    )
    readonly_fields = tuple(
        name
        for _title, options in fieldsets
        for name in options["fields"]
        if isinstance(name, str)
    )
    change_form_template = "admin/geartrain/job/change_form.html"

    class Media:
        css: ClassVar[dict[str, tuple[str, ...]]] = {"all": ("geartrain/admin.css",)}

    # Permissions -----------------------------------------------------------------

    def has_retry_permission(
        self, request: HttpRequest, obj: Job | None = None
    ) -> bool:
        """``geartrain.retry_job``: the "retry" action and the Retry button."""
        return request.user.has_perm(f"{self.opts.app_label}.retry_job")

    def has_cancel_permission(
        self, request: HttpRequest, obj: Job | None = None
    ) -> bool:
        """``geartrain.cancel_job``: the "cancel" action and the Cancel button."""
        return request.user.has_perm(f"{self.opts.app_label}.cancel_job")

    # Queries ----------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        return super().get_queryset(request).using(get_settings().DATABASE)

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return JobChangeList

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Job], search_term: str
    ) -> tuple[QuerySet[Job], bool]:
        """Digits (or ``#12``) find that job id; anything else searches task paths."""
        term = search_term.strip().removeprefix("#")
        if term.isascii() and term.isdigit():
            pk = int(term)
            if pk >= 2**63:
                return queryset.none(), False
            return queryset.filter(pk=pk), False
        return super().get_search_results(request, queryset, search_term)

    # URLs and views -----------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        extra = [
            path(
                "<path:object_id>/retry/",
                wrap(self.retry_view),
                name="geartrain_job_retry",
            ),
            path(
                "<path:object_id>/cancel/",
                wrap(self.cancel_view),
                name="geartrain_job_cancel",
            ),
        ]
        return extra + super().get_urls()

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST only, ``geartrain.retry_job`` required."""
        return actions.retry_view(self, request, object_id)

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST only, ``geartrain.cancel_job`` required."""
        return actions.cancel_view(self, request, object_id)

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Job | None = None,
    ) -> HttpResponse:
        if obj is not None:
            site = self.admin_site.name
            context.update(
                attempt_rows=attempt_rows(obj.attempt_log),
                show_retry=obj.status in FINISHED
                and self.has_retry_permission(request, obj),
                show_cancel=obj.status in WAITING
                and self.has_cancel_permission(request, obj),
                retry_url=reverse(
                    "admin:geartrain_job_retry", args=[quote(obj.pk)], current_app=site
                ),
                cancel_url=reverse(
                    "admin:geartrain_job_cancel", args=[quote(obj.pk)], current_app=site
                ),
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    # Columns and read-only fields ---------------------------------------------------

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, obj: Job) -> SafeString:
        return status_badge(obj.status)

    @admin.display(description=_("duration"))
    def duration(self, obj: Job) -> str:
        """From the first start to the end (retries and waits included)."""
        if obj.started_at is None or obj.finished_at is None:
            return "-"
        seconds = (obj.finished_at - obj.started_at).total_seconds()
        return format_seconds(seconds, precise=True)

    @admin.display(description=_("positional arguments"))
    def args_json(self, obj: Job) -> SafeString:
        return pretty_json(obj.args)

    @admin.display(description=_("keyword arguments"))
    def kwargs_json(self, obj: Job) -> SafeString:
        return pretty_json(obj.kwargs)

    @admin.display(description=_("return value"))
    def return_value_json(self, obj: Job) -> SafeString:
        return pretty_json(obj.return_value)

    def _job_link(self, pk: int) -> SafeString:
        url = reverse(
            "admin:geartrain_job_change",
            args=[quote(pk)],
            current_app=self.admin_site.name,
        )
        return format_html('<a href="{}">#{}</a>', url, pk)

    @admin.display(description=_("retried from"))
    def retried_from_link(self, obj: Job) -> SafeString | str:
        if obj.retried_from_id is None:
            return "-"
        return self._job_link(obj.retried_from_id)

    @admin.display(description=_("retried as"))
    def retries_links(self, obj: Job) -> SafeString | str:
        pks = list(
            Job.objects.using(get_settings().DATABASE)
            .filter(retried_from_id=obj.pk)
            .order_by("id")
            .values_list("id", flat=True)[: MAX_RETRY_LINKS + 1]
        )
        if not pks:
            return "-"
        shown = pks[:MAX_RETRY_LINKS]
        links = format_html_join(", ", "{}", ((self._job_link(pk),) for pk in shown))
        if len(pks) > MAX_RETRY_LINKS:
            return format_html("{}, …", links)
        return links
