"""The schedule admin's actions: enable, disable, toggle, run now; the slot preview.

Each calls the same service as code does (:mod:`geartrain.scheduler.api`), so the next
slot is recomputed as for any edit. Enable, disable and toggle need
``geartrain.change_schedule``; running now needs ``geartrain.run_schedule``. A schedule
made from a pipeline's cron field follows the pipeline's "enabled" box and is left
alone by enable, disable and toggle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
)
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from geartrain.admin.schedule_forms import slots_html
from geartrain.models import FireStatus, Schedule, ScheduleFire
from geartrain.scheduler import api

if TYPE_CHECKING:
    from geartrain.admin.schedules import ScheduleAdmin

View = Callable[[HttpRequest, str], HttpResponse]


# Enable, disable, toggle ------------------------------------------------------------


def _pipeline_note(count: int) -> str:
    return ngettext(
        "%(count)d was left alone: it is made from a pipeline's cron field and "
        "follows the pipeline's Enabled box; change it on the pipeline's page",
        "%(count)d were left alone: they are made from pipelines' cron fields and "
        "follow the pipelines' Enabled boxes; change them on the pipelines' pages",
        count,
    ) % {"count": count}


def enabled_message(
    word: str, changed: int, already: int, from_pipeline: int, detail: str = ""
) -> str:
    """``"2 schedules were successfully disabled; 1 was already disabled."``"""
    # Translators: word is "enabled", "disabled" or "toggled".
    text = ngettext(
        "%(count)d schedule was successfully %(word)s",
        "%(count)d schedules were successfully %(word)s",
        changed,
    ) % {"count": changed, "word": word}
    text += detail
    if already:
        text += "; " + ngettext(
            "%(count)d was already %(word)s",
            "%(count)d were already %(word)s",
            already,
        ) % {"count": already, "word": word}
    if from_pipeline:
        text += "; " + _pipeline_note(from_pipeline)
    return text + "."


def _set(
    modeladmin: ScheduleAdmin,
    request: HttpRequest,
    queryset: QuerySet[Schedule],
    enabled: bool | None,
) -> None:
    chosen = list(queryset.order_by("name"))
    managed = [s for s in chosen if not s.from_pipeline]
    targets = [s for s in managed if enabled is None or s.enabled != enabled]
    turned_on = sum(1 for s in targets if not s.enabled)
    changed = api.set_enabled(targets, enabled)
    for schedule in targets:  # the schedule's history says who switched it
        modeladmin.log_change(request, schedule, [{"changed": {"fields": ["Enabled"]}}])
    if enabled is None:
        detail = ""
        if changed:
            detail = _(" (%(on)d enabled, %(off)d disabled)") % {
                "on": turned_on,
                "off": changed - turned_on,
            }
        text = enabled_message(
            _("toggled"), changed, 0, len(chosen) - len(managed), detail
        )
    else:
        word = _("enabled") if enabled else _("disabled")
        text = enabled_message(
            word, changed, len(managed) - changed, len(chosen) - len(managed)
        )
    modeladmin.message_user(
        request, text, messages.SUCCESS if changed else messages.WARNING
    )


@admin.action(
    description=gettext_lazy("Enable selected schedules"), permissions=["change"]
)
def enable_selected(
    modeladmin: ScheduleAdmin, request: HttpRequest, queryset: QuerySet[Schedule]
) -> None:
    """Enable: the next slot counts from now (the past is not fired)."""
    _set(modeladmin, request, queryset, True)


@admin.action(
    description=gettext_lazy("Disable selected schedules"), permissions=["change"]
)
def disable_selected(
    modeladmin: ScheduleAdmin, request: HttpRequest, queryset: QuerySet[Schedule]
) -> None:
    """Disable: no slot fires until enabled again."""
    _set(modeladmin, request, queryset, False)


@admin.action(
    description=gettext_lazy("Toggle selected schedules"), permissions=["change"]
)
def toggle_selected(
    modeladmin: ScheduleAdmin, request: HttpRequest, queryset: QuerySet[Schedule]
) -> None:
    """Flip "enabled" of each selected schedule."""
    _set(modeladmin, request, queryset, None)


# Run now ----------------------------------------------------------------------------


def fire_message(schedule: Schedule, fire: ScheduleFire) -> str:
    """``"Schedule 'nightly' ran now as job #15."``, or why it did not run."""
    name = repr(schedule.name)
    if fire.status == FireStatus.SKIPPED:
        reason = fire.reason.rstrip(".")
        return _("Schedule %(name)s did not run now: %(reason)s.") % {
            "name": name,
            "reason": reason,
        }
    if fire.pipeline_run_id is not None:
        return _("Schedule %(name)s ran now as pipeline run #%(id)s.") % {
            "name": name,
            "id": fire.pipeline_run_id,
        }
    return _("Schedule %(name)s ran now as job #%(id)s.") % {
        "name": name,
        "id": fire.job_id,
    }


def _run(
    modeladmin: ScheduleAdmin, request: HttpRequest, schedules: Sequence[Schedule]
) -> None:
    who = request.user.get_username()
    for schedule in schedules:
        fire = api.run_now(schedule, launched_by=who)
        skipped = fire.status == FireStatus.SKIPPED
        modeladmin.message_user(
            request,
            fire_message(schedule, fire),
            messages.WARNING if skipped else messages.SUCCESS,
        )


@admin.action(
    description=gettext_lazy("Run selected schedules now"), permissions=["run"]
)
def run_selected(
    modeladmin: ScheduleAdmin, request: HttpRequest, queryset: QuerySet[Schedule]
) -> None:
    """Fire each selected schedule's target once, now (its timing is unchanged)."""
    _run(
        modeladmin, request, list(queryset.select_related("pipeline").order_by("name"))
    )


def _change_url(modeladmin: ScheduleAdmin, schedule: Schedule) -> str:
    return reverse(
        "admin:geartrain_schedule_change",
        args=[quote(schedule.pk)],
        current_app=modeladmin.admin_site.name,
    )


def run_view(modeladmin: ScheduleAdmin) -> View:
    """POST ``<id>/run/``: the "Run now" button (``geartrain.run_schedule``)."""

    def view(request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        allowed = modeladmin.has_run_permission(request)
        if not (allowed and modeladmin.has_view_or_change_permission(request)):
            raise PermissionDenied
        schedule = modeladmin.get_object(request, unquote(object_id))
        if schedule is None:
            raise Http404(
                _("There is no schedule with id %(id)r; it may have been deleted.")
                % {"id": object_id}
            )
        _run(modeladmin, request, [schedule])
        return redirect(_change_url(modeladmin, schedule))

    return view


# The slot preview -------------------------------------------------------------------


def _when(request: HttpRequest, name: str) -> datetime | None:
    """A date and time typed in the admin's split widget, or None."""
    field = forms.SplitDateTimeField(required=False)
    parts = [request.GET.get(f"{name}_0", ""), request.GET.get(f"{name}_1", "")]
    try:
        value: datetime | None = field.clean(parts)
    except forms.ValidationError:
        return None
    return value


def preview_view(modeladmin: ScheduleAdmin) -> Callable[[HttpRequest], HttpResponse]:
    """GET ``preview/?cron=…&timezone=…``: the next slots as typed (an HTML fragment).

    The change page asks for it while the expression is edited, so it can be checked
    before saving.
    """

    def view(request: HttpRequest) -> HttpResponse:
        if not (
            modeladmin.has_view_or_change_permission(request)
            or modeladmin.has_add_permission(request)
        ):
            raise PermissionDenied
        html = slots_html(
            request.GET.get("cron", "").strip(),
            request.GET.get("timezone", "").strip(),
            now=timezone.now(),
            start=_when(request, "cron_base"),
            end=_when(request, "end_at"),
            enabled=request.GET.get("enabled", "on") == "on",
        )
        return HttpResponse(html)

    return view
