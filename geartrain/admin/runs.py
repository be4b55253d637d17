"""The pipeline run admin: read-only runs with their stages, steps, jobs and errors.

A run page draws the DAG coloured by stage status and a timeline of step runs, and
offers Cancel, Resume and Dismiss (each POST-only, each with its own permission).
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib import admin
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from geartrain.admin import run_actions
from geartrain.admin.base import ReadOnlyAdmin
from geartrain.admin.display import pretty_json
from geartrain.admin.filters import ExactValueFilter
from geartrain.admin.pages import (
    admin_link,
    duration_text,
    run_badge,
    run_details,
    short_time,
)
from geartrain.conf import get_settings
from geartrain.models import Pipeline, PipelineRun, StepError
from geartrain.models.run import RUN_FINAL

PIPELINE_CSS = ("geartrain/admin.css", "geartrain/pipelines.css")


def _db() -> str:
    return get_settings().DATABASE


class PipelineNameFilter(ExactValueFilter):
    """Runs of one pipeline; the choices are the defined pipelines."""

    title = gettext_lazy("pipeline")
    parameter_name = field = "pipeline_name"

    def values(self, request: HttpRequest, model_admin: Any) -> list[str]:
        return list(Pipeline.objects.using(_db()).values_list("name", flat=True))


class PipelineRunAdmin(ReadOnlyAdmin[PipelineRun]):
    """Runs: status, trigger, progress; a detail page with pictures and every step."""

    list_display = (
        "id",
        "pipeline_name",
        "status_badge",
        "trigger",
        "launched_by",
        "created",
        "started",
        "finished",
        "duration",
        "progress",
    )
    list_display_links = ("id", "pipeline_name")
    list_filter = ("status", "trigger", PipelineNameFilter)
    search_fields = ("pipeline_name", "launched_by")
    search_help_text = gettext_lazy("A run id (digits), a pipeline name or a user.")
    ordering = ("-created_at", "-id")
    list_per_page = 50
    fieldsets = (
        (
            None,
            {
                "fields": (
                    ("pipeline_link", "status_badge", "progress"),
                    ("trigger", "launched_by", "id"),
                    ("created_at", "started_at", "finished_at", "duration"),
                )
            },
        ),
        (gettext_lazy("Runtime arguments"), {"fields": ("arguments_json",)}),
        (
            gettext_lazy("History"),
            {
                "fields": (
                    ("resumed_from_link", "resumed_by_links"),
                    ("cancel_requested", "dismissed"),
                )
            },
        ),
        (
            gettext_lazy("Definition at launch"),
            {"fields": ("snapshot_json",), "classes": ("collapse",)},
        ),
    )
    readonly_fields = (
        "pipeline_link",
        "status_badge",
        "progress",
        "trigger",
        "launched_by",
        "id",
        "created_at",
        "started_at",
        "finished_at",
        "duration",
        "arguments_json",
        "resumed_from_link",
        "resumed_by_links",
        "cancel_requested",
        "dismissed",
        "snapshot_json",
    )
    change_form_template = "admin/geartrain/pipelinerun/change_form.html"

    class Media:
        css: ClassVar[dict[str, tuple[str, ...]]] = {"all": PIPELINE_CSS}

    # Permissions --------------------------------------------------------------------

    def has_delete_permission(
        self, request: HttpRequest, obj: PipelineRun | None = None
    ) -> bool:
        """Runs are the record of what happened: only superusers delete them."""
        return bool(request.user.is_active and request.user.is_superuser)

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        """``geartrain.cancel_pipelinerun``: the Cancel button."""
        return request.user.has_perm(f"{self.opts.app_label}.cancel_pipelinerun")

    def has_resume_permission(self, request: HttpRequest) -> bool:
        """``geartrain.resume_pipelinerun``: the Resume and Dismiss buttons."""
        return request.user.has_perm(f"{self.opts.app_label}.resume_pipelinerun")

    # Queries ------------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet[PipelineRun]:
        final = Q(step_runs__status__in=RUN_FINAL)
        return (
            super()
            .get_queryset(request)
            .using(_db())
            .annotate(
                steps_total=Count("step_runs"),
                steps_done=Count("step_runs", filter=final),
            )
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[PipelineRun], search_term: str
    ) -> tuple[QuerySet[PipelineRun], bool]:
        """Digits (or ``#12``) find that run; anything else searches names."""
        term = search_term.strip().removeprefix("#")
        if term.isascii() and term.isdigit():
            pk = int(term)
            return (queryset.filter(pk=pk) if pk < 2**63 else queryset.none()), False
        return super().get_search_results(request, queryset, search_term)

    # URLs ---------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        extra = [
            path(
                f"<path:object_id>/{name}/",
                wrap(getattr(run_actions, f"{name}_view")(self)),
                name=f"geartrain_pipelinerun_{name}",
            )
            for name in run_actions.ACTIONS
        ]
        return extra + super().get_urls()

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: PipelineRun | None = None,
    ) -> HttpResponse:
        if obj is not None:
            context.update(run_actions.buttons(self, request, obj))
            context.update(run_details(obj, self.admin_site.name))
        return super().render_change_form(request, context, add, change, form_url, obj)

    # Columns and read-only fields -----------------------------------------------------

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_badge(self, obj: PipelineRun) -> SafeString:
        return run_badge(obj)

    @admin.display(description=gettext_lazy("created at"), ordering="created_at")
    def created(self, obj: PipelineRun) -> str:
        return short_time(obj.created_at)

    @admin.display(description=gettext_lazy("started at"), ordering="started_at")
    def started(self, obj: PipelineRun) -> str:
        return short_time(obj.started_at)

    @admin.display(description=gettext_lazy("finished at"), ordering="finished_at")
    def finished(self, obj: PipelineRun) -> str:
        return short_time(obj.finished_at)

    @admin.display(description=gettext_lazy("duration"))
    def duration(self, obj: PipelineRun) -> str:
        return duration_text(obj)

    @admin.display(description=gettext_lazy("progress"))
    def progress(self, obj: PipelineRun) -> str:
        done = int(getattr(obj, "steps_done", 0) or 0)
        total = int(getattr(obj, "steps_total", 0) or 0)
        return _("%(done)d/%(total)d steps") % {"done": done, "total": total}

    @admin.display(description=gettext_lazy("pipeline"))
    def pipeline_link(self, obj: PipelineRun) -> SafeString | str:
        if obj.pipeline_id is None:
            return _("%(name)s (deleted)") % {"name": obj.pipeline_name}
        site = self.admin_site.name
        return admin_link("pipeline", obj.pipeline_id, obj.pipeline_name, site)

    @admin.display(description=gettext_lazy("runtime arguments"))
    def arguments_json(self, obj: PipelineRun) -> SafeString:
        return pretty_json(obj.arguments)

    @admin.display(description=gettext_lazy("definition at launch"))
    def snapshot_json(self, obj: PipelineRun) -> SafeString:
        return pretty_json(obj.snapshot)

    @admin.display(description=gettext_lazy("resumed from"))
    def resumed_from_link(self, obj: PipelineRun) -> SafeString | str:
        if obj.resumed_from_id is None:
            return "-"
        site = self.admin_site.name
        return admin_link(
            "pipelinerun", obj.resumed_from_id, f"#{obj.resumed_from_id}", site
        )

    @admin.display(description=gettext_lazy("resumed as"))
    def resumed_by_links(self, obj: PipelineRun) -> SafeString | str:
        pks = list(obj.resumed_by.order_by("id").values_list("id", flat=True))
        if not pks:
            return "-"
        site = self.admin_site.name
        return format_html_join(
            ", ",
            "{}",
            ((admin_link("pipelinerun", pk, f"#{pk}", site),) for pk in pks),
        )


class StepErrorAdmin(ReadOnlyAdmin[StepError]):
    """Errors recorded by steps' default error handler. Read-only."""

    list_display = ("created_at", "run_link", "step", "error_type", "short_message")
    list_select_related = ("step_run",)
    search_fields = ("error_type", "message", "step_run__step_name")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-id")
    fields = ("created_at", "run_link", "step", "error_type", "message", "trace")
    readonly_fields = fields

    class Media:
        css: ClassVar[dict[str, tuple[str, ...]]] = {"all": PIPELINE_CSS}

    def get_queryset(self, request: HttpRequest) -> QuerySet[StepError]:
        return super().get_queryset(request).using(_db())

    @admin.display(description=gettext_lazy("run"), ordering="step_run__run_id")
    def run_link(self, obj: StepError) -> SafeString:
        pk = obj.step_run.run_id
        return admin_link("pipelinerun", pk, f"#{pk}", self.admin_site.name)

    @admin.display(description=gettext_lazy("step"), ordering="step_run__step_name")
    def step(self, obj: StepError) -> str:
        return obj.step_run.step_name

    @admin.display(description=gettext_lazy("message"))
    def short_message(self, obj: StepError) -> str:
        return obj.message if len(obj.message) <= 120 else obj.message[:119] + "…"

    @admin.display(description=gettext_lazy("traceback"))
    def trace(self, obj: StepError) -> SafeString:
        return format_html('<pre class="geartrain-traceback">{}</pre>', obj.traceback)
