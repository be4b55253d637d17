"""What hangs off a schedule: its dependencies (inlines) and its fires (an admin).

The fire admin is read-only: one row per slot, fired or skipped, with the reason a
slot was skipped, so missed and refused slots can be found and searched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from geartrain.admin import schedule_forms as sforms
from geartrain.admin.base import ReadOnlyAdmin
from geartrain.admin.display import format_seconds
from geartrain.admin.graphs import shorten
from geartrain.admin.pages import admin_link
from geartrain.admin.schedule_pages import fire_badge, slot_text, work_link
from geartrain.conf import get_settings
from geartrain.models import Schedule, ScheduleDependency, ScheduleFire

if TYPE_CHECKING:  # generic only in django-stubs
    _DependencyInlineBase = admin.TabularInline[ScheduleDependency, Schedule]
else:
    _DependencyInlineBase = admin.TabularInline

SCHEDULE_CSS = (
    "geartrain/admin.css",
    "geartrain/pipelines.css",
    "geartrain/schedules.css",
)


class TargetKindFilter(admin.SimpleListFilter):
    """Schedules that launch a pipeline, or that enqueue a task."""

    title = gettext_lazy("target")
    parameter_name = "target"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("pipeline", _("pipeline")), ("task", _("task"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value in ("pipeline", "task"):
            return queryset.filter(pipeline__isnull=value == "task")
        return queryset


class _DependencyInline(_DependencyInlineBase):
    """What both sides of a schedule's dependencies show."""

    model = ScheduleDependency
    form = sforms.DependencyForm
    readonly_fields = ("changed_at",)
    extra = 0
    classes = ("geartrain-dependencies",)


class DependentOnInline(_DependencyInline):
    """The schedules this one waits for (it is the depender)."""

    fk_name = "depender"
    fields = ("dependee", "future", "on_failure", "changed_at")
    verbose_name = gettext_lazy("dependency")
    verbose_name_plural = gettext_lazy("Dependent on")


class DependentByInline(_DependencyInline):
    """The schedules that wait for this one (it is the dependee)."""

    fk_name = "dependee"
    fields = ("depender", "future", "on_failure", "changed_at")
    verbose_name = gettext_lazy("dependent schedule")
    verbose_name_plural = gettext_lazy("Dependent by")

    def get_formset(
        self, request: HttpRequest, obj: Schedule | None = None, **kwargs: Any
    ) -> Any:
        formset = super().get_formset(request, obj, **kwargs)
        field = formset.form.base_fields.get("depender")
        if obj is not None and isinstance(field, forms.ModelChoiceField):
            # Waiting for itself is set under "Dependent on" (and is 'future only').
            field.queryset = Schedule.objects.exclude(pk=obj.pk)
        return formset


class ScheduleFireAdmin(ReadOnlyAdmin[ScheduleFire]):
    """Every fired or skipped slot of every schedule. Read-only."""

    list_display = (
        "slot_shown",
        "schedule_link",
        "kind",
        "status_badge",
        "short_reason",
        "fired_at",
        "finished_at",
        "duration",
        "work",
    )
    list_display_links = ("slot_shown",)
    list_filter = ("status", "kind", "schedule")
    list_select_related = ("schedule",)
    search_fields = ("schedule__name", "reason")
    search_help_text = gettext_lazy("A schedule name, or words of a skip reason.")
    date_hierarchy = "fired_at"
    list_per_page = 50
    fields = (
        "schedule_link",
        "slot_shown",
        "kind",
        "status_badge",
        "reason",
        "fired_at",
        "finished_at",
        "duration",
        "work",
        "launched_by",
    )
    readonly_fields = fields

    class Media:
        css: ClassVar[dict[str, tuple[str, ...]]] = {"all": SCHEDULE_CSS}

    def has_delete_permission(
        self, request: HttpRequest, obj: ScheduleFire | None = None
    ) -> bool:
        """Fires keep each slot fired once: only superusers delete them."""
        return bool(request.user.is_active and request.user.is_superuser)

    def get_queryset(self, request: HttpRequest) -> QuerySet[ScheduleFire]:
        return super().get_queryset(request).using(get_settings().DATABASE)

    @admin.display(description=gettext_lazy("schedule"), ordering="schedule__name")
    def schedule_link(self, obj: ScheduleFire) -> SafeString:
        schedule = obj.schedule
        return admin_link("schedule", schedule.pk, schedule.name, self.admin_site.name)

    @admin.display(description=gettext_lazy("slot"), ordering="slot")
    def slot_shown(self, obj: ScheduleFire) -> str:
        return slot_text(obj, obj.schedule.timezone)

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_badge(self, obj: ScheduleFire) -> SafeString:
        return fire_badge(obj.status)

    @admin.display(description=gettext_lazy("reason"))
    def short_reason(self, obj: ScheduleFire) -> str:
        return shorten(obj.reason, 120) if obj.reason else "-"

    @admin.display(description=gettext_lazy("duration"))
    def duration(self, obj: ScheduleFire) -> str:
        took = obj.duration
        return (
            "-" if took is None else format_seconds(took.total_seconds(), precise=True)
        )

    @admin.display(description=gettext_lazy("job or run"))
    def work(self, obj: ScheduleFire) -> SafeString | str:
        return work_link(obj, self.admin_site.name)
