"""The schedule admin: cron, zone, target and policies, with the next slots and fires.

A schedule's page shows its next slots (in its zone and in UTC, updated while the
expression is typed), the dependencies in both directions, a strip of its recent fires
and a "Run now" button. A schedule made from a pipeline's cron field is managed on the
pipeline's page: here its configuration is read-only (its dependencies are not).
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.core.exceptions import ValidationError
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from geartrain.admin import schedule_actions as actions
from geartrain.admin import schedule_forms as sforms
from geartrain.admin.base import RollbackAdmin
from geartrain.admin.graphs import shorten
from geartrain.admin.pages import admin_link
from geartrain.admin.schedule_pages import (
    RECENT_FIRES,
    STRIP_FIRES,
    fires_svg,
    marks,
    recent_rows,
)
from geartrain.admin.schedule_related import (
    SCHEDULE_CSS,
    DependentByInline,
    DependentOnInline,
    TargetKindFilter,
)
from geartrain.conf import get_settings
from geartrain.models import FireStatus, Schedule, ScheduleFire
from geartrain.models.schedule_rules import check_dependency

BOOKKEEPING = (
    "next_slot",
    "due_at",
    "last_slot",
    "last_fired_at",
    "total_runs",
    "running_now",
    "held_reason",
    "from_pipeline",
    "changed_at",
)


def _db() -> str:
    return get_settings().DATABASE


class ScheduleAdmin(RollbackAdmin[Schedule]):
    """Schedules: list with their bookkeeping, edit form, actions, fires."""

    form = sforms.ScheduleForm
    list_display = (
        "name",
        "cron_code",
        "timezone",
        "target",
        "enabled",
        "next_slot_text",
        "last_slot_text",
        "last_fired_at",
        "total_runs",
        "running",
        "held",
    )
    list_filter = ("enabled", "misfire", TargetKindFilter, "from_pipeline")
    search_fields = ("name", "task_path", "pipeline__name")
    search_help_text = gettext_lazy("A schedule name, task path or pipeline name.")
    list_select_related = ("pipeline",)
    actions = (
        actions.enable_selected,
        actions.disable_selected,
        actions.toggle_selected,
        actions.run_selected,
    )
    readonly_fields = ("next_slots", *BOOKKEEPING)
    inlines = (DependentOnInline, DependentByInline)
    change_form_template = "admin/geartrain/schedule/change_form.html"

    class Media:
        css: ClassVar[dict[str, tuple[str, ...]]] = {"all": SCHEDULE_CSS}
        js = ("geartrain/schedules.js",)

    # Permissions and queries ---------------------------------------------------------

    def has_run_permission(self, request: HttpRequest) -> bool:
        """``geartrain.run_schedule``: "Run now" and "Run selected schedules now"."""
        return request.user.has_perm(f"{self.opts.app_label}.run_schedule")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Schedule]:
        running = (
            ScheduleFire.objects.filter(
                schedule=OuterRef("pk"), status=FireStatus.FIRED
            )
            .order_by()
            .values("schedule")
            .annotate(count=Count("pk"))
            .values("count")
        )
        return (
            super()
            .get_queryset(request)
            .using(_db())
            .annotate(
                running_count=Coalesce(
                    Subquery(running, output_field=IntegerField()), 0
                )
            )
        )

    def get_fieldsets(self, request: HttpRequest, obj: Schedule | None = None) -> Any:
        target: dict[str, tuple[str, ...]] = {
            "fields": ("pipeline", "task_path", "args", "kwargs", "queue", "priority")
        }
        if obj is not None:  # a new schedule needs its target: open on the add page
            target["classes"] = ("collapse",)
        fieldsets: list[tuple[Any, dict[str, Any]]] = [
            (None, {"fields": ("name", "description", "enabled")}),
            (
                gettext_lazy("Timing"),
                {"fields": ("cron", "timezone", "next_slots", "cron_base", "end_at")},
            ),
            (gettext_lazy("Target"), target),
            (
                gettext_lazy("Misfire & overlap"),
                {
                    "fields": (
                        "misfire",
                        "grace_seconds",
                        "catch_up_limit",
                        "skip_if_running",
                    )
                },
            ),
        ]
        if obj is not None:
            fieldsets.append(
                (
                    gettext_lazy("Bookkeeping"),
                    {
                        "fields": (
                            ("next_slot", "due_at"),
                            ("last_slot", "last_fired_at"),
                            ("total_runs", "running_now"),
                            "held_reason",
                            ("from_pipeline", "changed_at"),
                        )
                    },
                )
            )
        return fieldsets

    def get_readonly_fields(
        self, request: HttpRequest, obj: Schedule | None = None
    ) -> Any:
        if obj is not None and obj.from_pipeline:
            # Kept in step with the pipeline's cron field by every pipeline save.
            return (*sforms.ScheduleForm.Meta.fields, *self.readonly_fields)
        return self.readonly_fields

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        deleted, counts, perms_needed, protected = super().get_deleted_objects(
            objs, request
        )
        for schedule in objs:
            if getattr(schedule, "from_pipeline", False):
                perms_needed.add(
                    _(
                        "schedule %(name)r, which is made from the cron field of "
                        "pipeline %(pipeline)r (clear that field on the pipeline's "
                        "page to delete it)"
                    )
                    % {"name": schedule.name, "pipeline": str(schedule.pipeline)}
                )
        return deleted, counts, perms_needed, protected

    # Saving: dependencies are checked once saved, in the save's transaction ----------

    def save_model(
        self, request: HttpRequest, obj: Schedule, form: Any, change: bool
    ) -> None:
        obj.save(using=_db())

    def save_related(
        self, request: HttpRequest, form: Any, formsets: Any, change: bool
    ) -> None:
        super().save_related(request, form, formsets, change)
        problems: list[str] = []
        for formset in formsets:
            saved = [*formset.new_objects, *(o for o, _f in formset.changed_objects)]
            for dependency in saved:
                # Checked again now that every edge of this save is stored: two new
                # edges can close a cycle that neither closes alone.
                try:
                    check_dependency(dependency)
                except ValidationError as exc:
                    problems += [m for m in exc.messages if m not in problems]
        if problems:
            raise sforms.DependenciesRejected(problems)

    # URLs ----------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        extra = [
            path(
                "preview/",
                wrap(actions.preview_view(self)),
                name="geartrain_schedule_preview",
            ),
            path(
                "<path:object_id>/run/",
                wrap(actions.run_view(self)),
                name="geartrain_schedule_run",
            ),
        ]
        return extra + super().get_urls()

    # The change page -----------------------------------------------------------------

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Schedule | None = None,
    ) -> HttpResponse:
        site = self.admin_site.name
        context["preview_url"] = reverse(
            "admin:geartrain_schedule_preview", current_app=site
        )
        if obj is not None and obj.pk is not None:
            context.update(self._fires_context(obj))
            fires = reverse("admin:geartrain_schedulefire_changelist", current_app=site)
            context.update(
                fires_url=f"{fires}?{urlencode({'schedule__id__exact': obj.pk})}",
                show_run=self.has_run_permission(request),
                run_url=reverse(
                    "admin:geartrain_schedule_run",
                    args=[quote(obj.pk)],
                    current_app=site,
                ),
            )
            if obj.from_pipeline and obj.pipeline is not None:
                context.update(
                    show_delete=False,
                    pipeline_link=admin_link(
                        "pipeline", obj.pipeline.pk, obj.pipeline.name, site
                    ),
                )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _fires_context(self, obj: Schedule) -> dict[str, Any]:
        site = self.admin_site.name
        fires = list(
            ScheduleFire.objects.using(_db())
            .filter(schedule=obj)
            .order_by("-fired_at", "-id")[:STRIP_FIRES]
        )
        strip = fires_svg(
            marks(fires, obj.timezone, site),
            zone_name=obj.timezone,
            label=_("Recent fires of schedule %(name)s") % {"name": obj.name},
        )
        return {
            "fires_strip": strip,
            "recent_fires": recent_rows(fires[:RECENT_FIRES], obj.timezone, site),
        }

    # Columns and read-only fields ----------------------------------------------------

    @admin.display(description=gettext_lazy("cron expression"), ordering="cron")
    def cron_code(self, obj: Schedule) -> SafeString:
        return format_html("<code>{}</code>", obj.cron)

    @admin.display(description=gettext_lazy("target"))
    def target(self, obj: Schedule) -> SafeString:
        if obj.pipeline is not None:
            link = admin_link(
                "pipeline", obj.pipeline.pk, obj.pipeline.name, self.admin_site.name
            )
            return format_html("{} {}", _("pipeline"), link)
        return format_html("{} <code>{}</code>", _("task"), obj.task_path)

    @admin.display(description=gettext_lazy("next slot"), ordering="next_slot")
    def next_slot_text(self, obj: Schedule) -> str:
        return sforms.zone_text(obj.next_slot, obj.timezone) if obj.next_slot else "-"

    @admin.display(description=gettext_lazy("last slot"), ordering="last_slot")
    def last_slot_text(self, obj: Schedule) -> str:
        return sforms.zone_text(obj.last_slot, obj.timezone) if obj.last_slot else "-"

    @admin.display(description=gettext_lazy("running"), ordering="running_count")
    def running(self, obj: Schedule) -> int:
        return int(getattr(obj, "running_count", 0) or 0)

    @admin.display(description=gettext_lazy("running now"))
    def running_now(self, obj: Schedule) -> int:
        """Fires whose job or run has not finished."""
        return obj.fires.using(_db()).filter(status=FireStatus.FIRED).count()

    @admin.display(description=gettext_lazy("held because"))
    def held(self, obj: Schedule) -> str:
        return shorten(obj.held_reason, 80) if obj.held_reason else "-"

    @admin.display(description=gettext_lazy("next slots"))
    def next_slots(self, obj: Schedule) -> SafeString:
        return format_html(
            '<div id="geartrain-next-slots">{}</div>',
            sforms.schedule_preview(obj, timezone.now()),
        )
