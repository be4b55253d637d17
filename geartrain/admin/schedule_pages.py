"""What the schedule pages show: fire badges, links to the work, the fires strip.

:func:`fires_svg` is pure (plain values in, an SVG string out), like
:mod:`geartrain.admin.graphs`, whose colours and tick steps it reuses.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib.admin.utils import quote
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from geartrain.admin.graphs import FONT, colours, shorten, tick_step
from geartrain.admin.pages import admin_link
from geartrain.admin.schedule_forms import zone_text
from geartrain.conf import get_settings
from geartrain.models import FireKind, FireStatus, Pipeline, Schedule, ScheduleFire
from geartrain.scheduler import cron

RECENT_FIRES = 20
STRIP_FIRES = 60
STRIP_W, STRIP_H, PAD, AXIS_Y, MARK = 820, 86, 16, 40, 6
FIRE_CODES = frozenset(FireStatus.values)
# A fire still running is drawn as a running run is.
PICTURE_STATUS: dict[str, str] = {FireStatus.FIRED: "running"}


def fire_badge(status: str) -> SafeString:
    """A coloured badge for a fire's status."""
    css = status if status in FIRE_CODES else "unknown"
    return format_html(
        '<span class="geartrain-status geartrain-status--{}">{}</span>', css, status
    )


def work_link(fire: ScheduleFire, site: str) -> SafeString | str:
    """A link to the fire's job or pipeline run, or ``"-"``."""
    if fire.job_id is not None:
        return admin_link(
            "job", fire.job_id, _("job #%(id)s") % {"id": fire.job_id}, site
        )
    if fire.pipeline_run_id is not None:
        text = _("run #%(id)s") % {"id": fire.pipeline_run_id}
        return admin_link("pipelinerun", fire.pipeline_run_id, text, site)
    return "-"


def work_url(fire: ScheduleFire, site: str) -> str | None:
    """The admin URL of the fire's job or run, or None."""
    if fire.job_id is not None:
        view, pk = "job", fire.job_id
    elif fire.pipeline_run_id is not None:
        view, pk = "pipelinerun", fire.pipeline_run_id
    else:
        return None
    return reverse(f"admin:geartrain_{view}_change", args=[quote(pk)], current_app=site)


def slot_text(fire: ScheduleFire, zone_name: str) -> str:
    """The slot in the schedule's zone, or "run now" for a fire without a slot."""
    if fire.slot is None:
        return _("run now")
    return zone_text(fire.slot, zone_name)


def recent_rows(fires: Sequence[ScheduleFire], zone_name: str, site: str) -> list[Any]:
    """Rows of the change page's "Recent fires" table, newest first."""
    return [
        {
            "fire": fire,
            "slot": slot_text(fire, zone_name),
            "badge": fire_badge(fire.status),
            "work": work_link(fire, site),
        }
        for fire in fires
    ]


def pipeline_schedule_text(pipeline: Pipeline, site: str) -> SafeString | str:
    """The pipeline page's link to the schedule kept from its cron field."""
    if pipeline.pk is None:
        return "-"
    schedule = (
        Schedule.objects.using(get_settings().DATABASE)
        .filter(pipeline=pipeline, from_pipeline=True)
        .first()
    )
    if schedule is None:
        return _("None: enter a cron expression to launch on a schedule.")
    link = admin_link("schedule", schedule.pk, schedule.name, site)
    if schedule.next_slot is None:
        return format_html("{} ({})", link, _("no next slot"))
    return format_html(
        "{} ({} {})",
        link,
        _("next slot"),
        zone_text(schedule.next_slot, schedule.timezone),
    )


# The fires strip --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mark:
    """One fire on the strip: where it sits, how it looks, where it links."""

    when: datetime
    status: str
    kind: str
    title: str
    link: str | None = None


def marks(fires: Sequence[ScheduleFire], zone_name: str, site: str) -> list[Mark]:
    """The strip's marks: each fire at its slot (a "run now" fire at its firing)."""
    made = []
    for fire in fires:
        when = fire.slot or fire.fired_at
        title = (
            f"{slot_text(fire, zone_name)}: {fire.get_kind_display()}, {fire.status}"
        )
        if fire.reason:
            title += f" ({fire.reason})"
        made.append(Mark(when, fire.status, fire.kind, title, work_url(fire, site)))
    return made


def _tick_format(span: float, step: float) -> str:
    if step < 60:
        return "%H:%M:%S"
    if step >= 86400:
        return "%b %d"
    return "%H:%M" if span < 86400 else "%b %d %H:%M"


def _axis(origin: datetime, span: float, scale: float, zone_name: str) -> SafeString:
    step = tick_step(span, 6)
    start = origin.timestamp()
    first = math.ceil(start / step) * step
    tz = _zone(zone_name)
    fmt = _tick_format(span, step)
    parts = []
    tick = first
    while tick <= start + span + 1e-6:
        x = PAD + (tick - start) * scale
        label = datetime.fromtimestamp(tick, UTC).astimezone(tz).strftime(fmt)
        parts.append(
            (f"{x:.1f}", AXIS_Y - 6, f"{x:.1f}", AXIS_Y + 4, f"{x:.1f}", label)
        )
        tick += step
    line = format_html(
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#c8c8c8"/>',
        PAD,
        AXIS_Y,
        STRIP_W - PAD,
        AXIS_Y,
    )
    ticks = format_html_join(
        "",
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#c8c8c8"/>'
        '<text x="{}" y="60" font-size="10" fill="#666" text-anchor="middle">{}</text>',
        parts,
    )
    return format_html("{}{}", line, ticks)


def _zone(zone_name: str) -> Any:
    try:
        return cron.zone(zone_name)
    except cron.InvalidTimeZone:
        return UTC


def _mark(mark: Mark, x: float) -> SafeString:
    stroke, _fill = colours(PICTURE_STATUS.get(mark.status, mark.status))
    skipped = mark.status == FireStatus.SKIPPED
    paint = format_html(
        'fill="{}" stroke="{}" stroke-width="1.5"{}',
        "#fff" if skipped else stroke,
        stroke,
        format_html(' stroke-dasharray="{}"', "2 2") if skipped else "",
    )
    if mark.kind == FireKind.MANUAL:  # a "run now" fire: a square
        shape = format_html(
            '<rect x="{}" y="{}" width="{}" height="{}" {}/>',
            f"{x - MARK:.1f}",
            AXIS_Y - 12 - MARK,
            MARK * 2,
            MARK * 2,
            paint,
        )
    else:
        shape = format_html(
            '<circle cx="{}" cy="{}" r="{}" {}/>', f"{x:.1f}", AXIS_Y - 12, MARK, paint
        )
    drawn = format_html(
        '<g class="geartrain-fire" data-status="{}" data-kind="{}"><title>{}</title>'
        "{}</g>",
        mark.status,
        mark.kind,
        mark.title,
        shape,
    )
    if mark.link:
        return format_html('<a href="{}">{}</a>', mark.link, drawn)
    return drawn


def _legend(found: Sequence[Mark]) -> SafeString:
    counts = Counter(m.status for m in found)
    text = " · ".join(
        f"{counts[status]} {status}" for status in FireStatus.values if counts[status]
    )
    return format_html(
        '<text x="{}" y="{}" font-size="11" fill="#444">{}</text>',
        PAD,
        STRIP_H - 8,
        shorten(text, 120),
    )


def fires_svg(
    found: Sequence[Mark], *, zone_name: str, label: str = "Fires"
) -> SafeString:
    """The fires on a time axis (slot times, in the schedule's zone).

    Colours follow the run statuses of :mod:`geartrain.admin.graphs` (a fire still
    running is drawn as running); a skipped fire is hollow, a "run now" fire square.
    """
    if found:
        first = min(m.when for m in found)
        spread = (max(m.when for m in found) - first).total_seconds()
        # A margin on both sides keeps the first and last marks off the edges.
        margin = max(spread * 0.04, 30.0)
        origin = first - timedelta(seconds=margin)
        span = spread + 2 * margin
        scale = (STRIP_W - 2 * PAD) / span
        body = format_html(
            "{}{}{}",
            _axis(origin, span, scale, zone_name),
            format_html_join(
                "",
                "{}",
                (
                    (_mark(m, PAD + (m.when - origin).total_seconds() * scale),)
                    for m in found
                ),
            ),
            _legend(found),
        )
    else:
        body = format_html(
            '<text x="{}" y="24" font-size="13" fill="#666">{}</text>',
            PAD,
            _("No fire yet."),
        )
    height = STRIP_H if found else 40
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="geartrain-fires" role="img" '
        'aria-label="{}" width="{}" height="{}" viewBox="0 0 {} {}" style="{}">'
        "<title>{}</title>{}</svg>",
        label,
        STRIP_W,
        height,
        STRIP_W,
        height,
        FONT,
        label,
        body,
    )
