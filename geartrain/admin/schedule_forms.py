"""Forms of the schedule admin: the schedule, its next slots, its dependencies.

Validation is the model's own (:mod:`geartrain.models.schedule_rules`), so the admin,
``full_clean()`` and code give the same messages. The form only offers choices: the
registered tasks, the configured queues and the IANA time zones (a datalist, so a
typed zone that does not exist gets the rule's message, not a generic one).
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from functools import cache
from typing import TYPE_CHECKING, Any

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from geartrain.admin.base import SaveRejected
from geartrain.conf import configured_queues
from geartrain.models import Schedule, ScheduleDependency
from geartrain.registry import registry
from geartrain.scheduler import cron

if TYPE_CHECKING:  # generic only in django-stubs
    _ScheduleFormBase = forms.ModelForm[Schedule]
    _DependencyFormBase = forms.ModelForm[ScheduleDependency]
else:
    _ScheduleFormBase = _DependencyFormBase = forms.ModelForm

NEXT_SLOTS = 5
TIME_ZONE_LIST = "geartrain-time-zones"


class DependenciesRejected(SaveRejected):
    """Saved dependencies form a cycle; the admin rolls the save back."""


@cache
def time_zones() -> tuple[str, ...]:
    """Every IANA time zone name known to this Python, sorted (read once)."""
    return tuple(sorted(zoneinfo.available_timezones()))


class TimeZoneInput(forms.TextInput):
    """A text input that suggests the IANA zones (``<datalist>``) as one types."""

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__({"list": TIME_ZONE_LIST, "size": 30, **(attrs or {})})

    def render(
        self,
        name: str,
        value: Any,
        attrs: dict[str, Any] | None = None,
        renderer: Any = None,
    ) -> SafeString:
        field = super().render(name, value, attrs, renderer)
        options = format_html_join(
            "", '<option value="{}">', ((z,) for z in time_zones())
        )
        return format_html(
            '{}<datalist id="{}">{}</datalist>', field, TIME_ZONE_LIST, options
        )


def offered(values: Iterable[str], current: str, missing: str) -> list[tuple[str, str]]:
    """Choices for ``values``; a stored value no longer offered stays selectable."""
    choices = [(v, v) for v in values]
    if current and current not in dict(choices):
        choices.insert(0, (current, f"{current} ({missing})"))
    return choices


class PlacedErrorsMixin:
    """Shows a model problem about a field the form does not edit above the form."""

    fields: dict[str, forms.Field]

    def _update_errors(self, errors: ValidationError) -> None:
        if hasattr(errors, "error_dict"):
            placed: dict[str, list[ValidationError]] = {}
            for name, problems in errors.error_dict.items():
                key = name if name in self.fields else NON_FIELD_ERRORS
                placed.setdefault(key, []).extend(problems)
            errors = ValidationError(placed)
        super()._update_errors(errors)  # type: ignore[misc]


class ScheduleForm(PlacedErrorsMixin, _ScheduleFormBase):
    """A schedule's configuration; the model's ``clean()`` checks it."""

    task_path = forms.ChoiceField(
        label=gettext_lazy("Task"),
        required=False,
        help_text=gettext_lazy("A registered task; leave empty to launch a pipeline."),
    )

    class Meta:
        model = Schedule
        fields = Schedule.CONFIG_FIELDS  # the admin's fieldsets give the order
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2, "cols": 60}),
            "cron": forms.TextInput(attrs={"size": 30, "autocomplete": "off"}),
            "timezone": TimeZoneInput(),
            "args": forms.Textarea(attrs={"rows": 2, "cols": 60}),
            "kwargs": forms.Textarea(attrs={"rows": 3, "cols": 60}),
        }
        help_texts = {
            "timezone": gettext_lazy(
                "The IANA zone the cron expression is read in, e.g. Europe/Paris."
            ),
            "args": gettext_lazy("A JSON list; tasks only."),
            "grace_seconds": gettext_lazy(
                "How late a slot may still run (skip and coalesce policies)."
            ),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        fields, schedule = self.fields, self.instance
        task = fields.get("task_path")
        if isinstance(task, forms.ChoiceField):
            task.choices = [
                ("", "---------"),
                *offered(registry.paths(), schedule.task_path, "not registered"),
            ]
        queues = configured_queues()
        if queues is not None and "queue" in fields:
            fields["queue"] = forms.ChoiceField(
                label=_("Queue"),
                initial="default",
                choices=offered(queues, schedule.queue, "not configured"),
                help_text=_("Tasks only; a pipeline's steps name their own queues."),
            )


class DependencyForm(PlacedErrorsMixin, _DependencyFormBase):
    """One dependency in the "Dependent on" or "Dependent by" inline."""

    class Meta:
        model = ScheduleDependency
        fields = ("depender", "dependee", "future", "on_failure")


# The next slots, shown under the cron expression ------------------------------------


@dataclass(frozen=True, slots=True)
class SlotPreview:
    """The next slots of an expression, or why there are none."""

    zone: str
    slots: tuple[datetime, ...] = ()
    problems: tuple[str, ...] = ()
    note: str = ""


def preview(
    expression: str,
    zone_name: str,
    *,
    now: datetime,
    start: datetime | None = None,
    end: datetime | None = None,
    enabled: bool = True,
    count: int = NEXT_SLOTS,
) -> SlotPreview:
    """The first ``count`` slots after ``now`` (or after ``start``, when later)."""
    problems = []
    parsed = tz = None
    try:
        parsed = cron.CronExpression.parse(expression)
    except cron.InvalidCronExpression as exc:
        problems.append(str(exc))
    try:
        tz = cron.zone(zone_name)
    except cron.InvalidTimeZone as exc:
        problems.append(str(exc))
    if parsed is None or tz is None:
        return SlotPreview(zone_name, problems=tuple(problems))
    after = max(now, start) if start is not None else now
    slots: list[datetime] = []
    while len(slots) < count:
        try:
            after = cron.next_fire(parsed, after, tz)
        except OverflowError:  # no slot before the year 10000
            break
        if end is not None and after > end:
            break
        slots.append(after)
    note = ""
    if not enabled:
        note = _("Disabled: nothing fires. These are the slots it would fire.")
    if len(slots) < count and end is not None:
        note = _("The schedule ends at %(end)s; no slot after that.") % {
            "end": utc_text(end)
        }
    return SlotPreview(zone_name, tuple(slots), note=note)


def zone_text(value: datetime, zone_name: str) -> str:
    """``"Tue 2026-03-03 09:00 CET"``: the wall time in the schedule's zone."""
    tz: tzinfo = UTC
    with suppress(cron.InvalidTimeZone):
        tz = cron.zone(zone_name)
    return value.astimezone(tz).strftime("%a %Y-%m-%d %H:%M %Z")


def utc_text(value: datetime) -> str:
    """``"2026-03-03 08:00 UTC"``."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def preview_html(found: SlotPreview) -> SafeString:
    """The preview as the change page shows it: a small table, a note, or problems."""
    if found.problems:
        return format_html(
            '<ul class="geartrain-slot-problems">{}</ul>',
            format_html_join("", "<li>{}</li>", ((p,) for p in found.problems)),
        )
    rows = format_html_join(
        "",
        '<tr class="geartrain-slot"><td>{}</td><td>{}</td></tr>',
        ((zone_text(s, found.zone), utc_text(s)) for s in found.slots),
    )
    note = format_html('<p class="help">{}</p>', found.note) if found.note else ""
    return format_html(
        '<table class="geartrain-next-slots"><thead><tr><th>{}</th><th>{}</th></tr>'
        "</thead><tbody>{}</tbody></table>{}",
        _("in %(zone)s") % {"zone": found.zone},
        _("in UTC"),
        rows,
        note,
    )


def slots_html(
    expression: str,
    zone_name: str,
    *,
    now: datetime,
    start: datetime | None = None,
    end: datetime | None = None,
    enabled: bool = True,
) -> SafeString:
    """The next slots of an expression as typed, or a prompt when it is empty."""
    if not expression:
        return format_html(
            '<p class="help">{}</p>',
            _("Enter a cron expression to see its next slots."),
        )
    found = preview(
        expression, zone_name, now=now, start=start, end=end, enabled=enabled
    )
    return preview_html(found)


def schedule_preview(schedule: Schedule, now: datetime) -> SafeString:
    """The next slots of ``schedule`` as currently typed or stored."""
    return slots_html(
        schedule.cron,
        schedule.timezone,
        now=now,
        start=schedule.cron_base,
        end=schedule.end_at,
        enabled=schedule.enabled,
    )
