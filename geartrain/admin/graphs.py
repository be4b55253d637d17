"""Server-side SVG pictures for the pipeline admin: the stage DAG and a run timeline.

Pure functions: plain lists and dicts in, an SVG string out (no database, no
JavaScript).
Every piece of text goes through ``format_html``, so stage and step names are escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from geartrain.admin.display import format_seconds

# Stroke (and bar) colour and light fill per run status; None = a definition.
COLOURS: dict[str | None, tuple[str, str]] = {
    None: ("#3d6a8a", "#eaf2f8"),
    "pending": ("#8a8a8a", "#f2f2f2"),
    "running": ("#b86e00", "#fff1d6"),
    "succeeded": ("#2e7d32", "#e3f4e4"),
    "failed": ("#c62828", "#fbe3e3"),
    "cancelled": ("#616161", "#e6e6e6"),
    "skipped": ("#9e9e9e", "#fafafa"),
    "blocked": ("#6f42c1", "#efe8fa"),
}
UNKNOWN = ("#8a8a8a", "#f2f2f2")
FONT = "font-family:inherit"

BOX_W, BOX_H, COL_GAP, ROW_GAP, PAD = 190, 48, 56, 16, 12
NAME_CHARS = 24

LABEL_W, CHART_W, ROW_H, AXIS_H = 210, 620, 20, 26
MAX_ROWS = 400
TICK_STEPS: tuple[float, ...] = (
    *(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30),
    *(60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400),
)


def colours(status: str | None) -> tuple[str, str]:
    """(stroke, fill) for a run status, or for a definition when ``status`` is None."""
    return COLOURS.get(status, UNKNOWN)


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _svg(
    width: float, height: float, label: str, css: str, body: SafeString
) -> SafeString:
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="{}" role="img" '
        'aria-label="{}" width="{}" height="{}" viewBox="0 0 {} {}" style="{}">'
        "<title>{}</title>{}</svg>",
        css,
        label,
        f"{width:.0f}",
        f"{height:.0f}",
        f"{width:.0f}",
        f"{height:.0f}",
        FONT,
        label,
        body,
    )


def _empty(css: str, label: str, text: str) -> SafeString:
    body = format_html(
        '<text x="{}" y="24" font-size="13" fill="#666">{}</text>', PAD, text
    )
    return _svg(LABEL_W + CHART_W + PAD * 2, 40, label, css, body)


# The DAG ----------------------------------------------------------------------------


def order_layers(
    layers: Sequence[Sequence[str]], depends_on: Mapping[str, Sequence[str]]
) -> list[list[str]]:
    """Layers reordered so a stage sits near the stages it depends on.

    Each stage after the first layer is placed by the mean row of its dependencies
    (a barycentre pass, which removes most crossings), ties by name.
    """
    row: dict[str, float] = {}
    ordered: list[list[str]] = []

    def place(name: str) -> tuple[float, str]:
        deps = [row[d] for d in depends_on.get(name, ()) if d in row]
        return (sum(deps) / len(deps) if deps else -1.0, name)

    for layer in layers:
        names = sorted(layer, key=place) if ordered else list(layer)
        height = len(names)
        for index, name in enumerate(names):
            # Rows are centred per column, as the boxes are drawn.
            row[name] = index - (height - 1) / 2
        ordered.append(names)
    return ordered


def dag_positions(
    layers: Sequence[Sequence[str]], depends_on: Mapping[str, Sequence[str]]
) -> tuple[dict[str, tuple[float, float]], float, float]:
    """Top-left corner of each stage's box, and the picture's width and height."""
    ordered = order_layers(layers, depends_on)
    tallest = max((len(layer) for layer in ordered), default=0)
    height = PAD * 2 + tallest * BOX_H + max(0, tallest - 1) * ROW_GAP
    width = PAD * 2 + len(ordered) * BOX_W + max(0, len(ordered) - 1) * COL_GAP
    positions: dict[str, tuple[float, float]] = {}
    for col, layer in enumerate(ordered):
        column = len(layer) * BOX_H + max(0, len(layer) - 1) * ROW_GAP
        top = (height - column) / 2
        for index, name in enumerate(layer):
            x = PAD + col * (BOX_W + COL_GAP)
            positions[name] = (x, top + index * (BOX_H + ROW_GAP))
    return positions, width, height


def _edge(start: tuple[float, float], end: tuple[float, float]) -> SafeString:
    x1, y1 = start[0] + BOX_W, start[1] + BOX_H / 2
    x2, y2 = end[0] - 2, end[1] + BOX_H / 2
    bend = max(COL_GAP / 2, (x2 - x1) / 3)
    path = (
        f"M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} "
        f"{x2 - bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
    )
    return format_html(
        '<path class="geartrain-dag-edge" d="{}" fill="none" stroke="#8a8a8a" '
        'stroke-width="1.5" marker-end="url(#geartrain-arrow)"/>',
        path,
    )


def _box(
    name: str,
    corner: tuple[float, float],
    caption: str,
    status: str | None,
    link: str | None,
) -> SafeString:
    x, y = corner
    stroke, fill = colours(status)
    tip = f"{name}: {caption}" if caption else name
    box = format_html(
        '<g class="geartrain-dag-stage" data-stage="{}" data-status="{}">'
        "<title>{}</title>"
        '<rect x="{}" y="{}" width="{}" height="{}" rx="6" fill="{}" stroke="{}" '
        'stroke-width="{}"{}/>'
        '<text x="{}" y="{}" font-size="13" font-weight="600" fill="#1b1b1b">{}</text>'
        '<text x="{}" y="{}" font-size="11" fill="#444">{}</text></g>',
        name,
        status or "",
        tip,
        f"{x:.1f}",
        f"{y:.1f}",
        BOX_W,
        BOX_H,
        fill,
        stroke,
        "2" if status == "running" else "1.5",
        format_html(' stroke-dasharray="{}"', "4 3") if status == "skipped" else "",
        f"{x + 10:.1f}",
        f"{y + 20:.1f}",
        shorten(name, NAME_CHARS),
        f"{x + 10:.1f}",
        f"{y + 37:.1f}",
        shorten(caption, NAME_CHARS + 6),
    )
    if link:
        return format_html(
            '<a href="{}" style="text-decoration:none">{}</a>', link, box
        )
    return box


def dag_svg(
    layers: Sequence[Sequence[str]],
    depends_on: Mapping[str, Sequence[str]],
    *,
    captions: Mapping[str, str] | None = None,
    statuses: Mapping[str, str] | None = None,
    links: Mapping[str, str] | None = None,
    label: str = "Stages",
) -> SafeString:
    """The stages as boxes in columns (one per layer), with an arrow per dependency.

    ``layers`` comes from :func:`geartrain.pipelines.spec.topological_stages`;
    ``depends_on`` maps a stage to the stages it runs after. ``captions`` is the
    second line of each box (``"3 steps"``), ``statuses`` colours the boxes (run
    pages), ``links`` makes a box a link.
    """
    if not any(layers):
        return _empty("geartrain-dag", label, "No stages yet.")
    positions, width, height = dag_positions(layers, depends_on)
    captions, statuses, links = captions or {}, statuses or {}, links or {}
    edges = [
        _edge(positions[dep], positions[name])
        for name in positions
        for dep in sorted(depends_on.get(name, ()))
        if dep in positions
    ]
    boxes = [
        _box(
            name,
            corner,
            captions.get(name, ""),
            statuses.get(name),
            links.get(name),
        )
        for name, corner in positions.items()
    ]
    marker = mark_safe(  # a constant
        '<defs><marker id="geartrain-arrow" viewBox="0 0 10 10" refX="9" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#8a8a8a"/></marker></defs>'
    )
    body = format_html(
        "{}{}{}",
        marker,
        format_html_join("", "{}", ((e,) for e in edges)),
        format_html_join("", "{}", ((b,) for b in boxes)),
    )
    return _svg(width, height, label, "geartrain-dag", body)


# The timeline -----------------------------------------------------------------------


def tick_step(span: float, most: int = 8) -> float:
    """The smallest round tick interval that puts at most ``most`` ticks on ``span``."""
    for step in TICK_STEPS:
        if span / step <= most:
            return float(step)
    return float(TICK_STEPS[-1] * (span // (TICK_STEPS[-1] * most) + 1))


def _tick_label(seconds: float) -> str:
    if seconds == int(seconds) and seconds < 60:
        return f"{int(seconds)} s"
    if seconds < 60:
        return format_seconds(seconds, precise=True)
    return format_seconds(seconds)


def _bounds(
    groups: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], now: datetime
) -> tuple[datetime, float] | None:
    starts = [b["started_at"] for _, bars in groups for b in bars if b["started_at"]]
    if not starts:
        return None
    origin = min(starts)
    ends = [
        b["finished_at"] or now for _, bars in groups for b in bars if b["started_at"]
    ]
    span = max((end - origin).total_seconds() for end in ends)
    return origin, max(span, 0.001)


def _axis(span: float, scale: float, height: float) -> SafeString:
    step = tick_step(span)
    parts = []
    count = int(span / step + 1e-9) + 1
    for index in range(count):
        x = LABEL_W + index * step * scale
        parts.append(
            format_html(
                '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#e2e2e2"/>'
                '<text x="{}" y="{}" font-size="10" fill="#666" '
                'text-anchor="middle">{}</text>',
                f"{x:.1f}",
                AXIS_H - 6,
                f"{x:.1f}",
                f"{height:.1f}",
                f"{x:.1f}",
                AXIS_H - 10,
                _tick_label(index * step),
            )
        )
    return format_html_join("", "{}", ((p,) for p in parts))


def _bar(
    bar: Mapping[str, Any], y: float, origin: datetime, scale: float, now: datetime
) -> SafeString:
    name, status = str(bar["name"]), str(bar["status"])
    stroke, _fill = colours(status)
    label = format_html(
        '<text x="{}" y="{}" font-size="11" fill="#1b1b1b">{}</text>',
        PAD + 12,
        f"{y + 14:.1f}",
        shorten(name, 30),
    )
    started: datetime | None = bar["started_at"]
    if started is None:
        note = format_html(
            '<text x="{}" y="{}" font-size="10" fill="#888">{}</text>',
            LABEL_W + 4,
            f"{y + 14:.1f}",
            status,
        )
        return format_html("{}{}", label, note)
    end: datetime = bar["finished_at"] or now
    x = LABEL_W + (started - origin).total_seconds() * scale
    width = max(2.0, (end - started).total_seconds() * scale)
    took = format_seconds((end - started).total_seconds(), precise=True)
    at = format_seconds((started - origin).total_seconds(), precise=True)
    return format_html(
        '{}<rect class="geartrain-bar" data-step="{}" data-status="{}" x="{}" y="{}" '
        'width="{}" height="{}" rx="2" fill="{}" opacity="{}">'
        "<title>{} ({}): {}, started at +{}</title></rect>",
        label,
        name,
        status,
        f"{x:.1f}",
        f"{y + 4:.1f}",
        f"{width:.1f}",
        ROW_H - 8,
        stroke,
        "0.6" if bar["finished_at"] is None else "1",
        name,
        status,
        took,
        at,
    )


def _stage_band(stage: str, y: float) -> SafeString:
    return format_html(
        '<rect x="0" y="{}" width="{}" height="{}" fill="#f3f5f7"/>'
        '<text x="{}" y="{}" font-size="11" font-weight="600" '
        'fill="#1b1b1b">{}</text>',
        f"{y:.1f}",
        LABEL_W + CHART_W + PAD * 2,
        ROW_H,
        PAD,
        f"{y + 14:.1f}",
        shorten(stage, 34),
    )


def _note(text: str, y: float) -> SafeString:
    return format_html(
        '<text x="{}" y="{}" font-size="11" fill="#666">{}</text>',
        PAD,
        f"{y + 14:.1f}",
        text,
    )


def timeline_svg(
    groups: Sequence[tuple[str, Sequence[Mapping[str, Any]]]],
    *,
    now: datetime,
    label: str = "Timeline",
) -> SafeString:
    """A Gantt chart of step runs, grouped by stage: one bar per step run.

    ``groups`` is ``[(stage name, [bar, ...]), ...]``; a bar is a mapping with
    ``name``, ``status``, ``started_at`` and ``finished_at`` (aware datetimes or
    None). A bar without an end (running) reaches ``now``; a step that never
    started is listed with its status and no bar. At most ``MAX_ROWS`` rows.
    """
    bounds = _bounds(groups, now)
    if bounds is None:
        return _empty("geartrain-timeline", label, "No step has started yet.")
    origin, span = bounds
    scale = CHART_W / span
    rows: list[SafeString] = []
    y, drawn, hidden = float(AXIS_H), 0, 0
    for stage, bars in groups:
        if drawn >= MAX_ROWS:
            hidden += len(bars)
            continue
        rows.append(_stage_band(stage, y))
        y += ROW_H
        for bar in bars:
            if drawn >= MAX_ROWS:
                hidden += 1
                continue
            rows.append(_bar(bar, y, origin, scale, now))
            y += ROW_H
            drawn += 1
    if hidden:
        rows.append(_note(f"{hidden} more step runs are not drawn.", y))
        y += ROW_H
    height = y + PAD
    body = format_html(
        "{}{}",
        _axis(span, scale, height),
        format_html_join("", "{}", ((r,) for r in rows)),
    )
    width = LABEL_W + CHART_W + PAD * 2
    return _svg(width, height, label, "geartrain-timeline", body)
