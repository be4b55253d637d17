"""Small rendering helpers shared by the job and worker admins (no database access)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.utils.html import format_html
from django.utils.safestring import SafeString

from geartrain.models import JobStatus

STATUS_CODES = frozenset(JobStatus.values)


def status_badge(status: str) -> SafeString:
    """A small coloured badge for a job status (colours live in geartrain/admin.css)."""
    css = status if status in STATUS_CODES else "unknown"
    return format_html(
        '<span class="geartrain-status geartrain-status--{}">{}</span>', css, status
    )


def pretty_json(value: Any) -> SafeString:
    """Indented JSON inside a ``<pre>``, escaped."""
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return format_html('<pre class="geartrain-json">{}</pre>', text)


def format_seconds(seconds: float, *, precise: bool = False) -> str:
    """``"350 ms"``, ``"12 s"``, ``"4 min 3 s"``, ``"2 h 5 min"``, ``"3 d 4 h"``.

    ``precise`` shows sub-minute values with a decimal (durations); otherwise whole
    seconds (ages such as "12 s ago").
    """
    seconds = max(0.0, seconds)
    if seconds < 60:
        if not precise:
            return f"{int(seconds)} s"
        if seconds < 1:
            return f"{seconds * 1000:.0f} ms"
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60} min"
    return f"{whole // 86400} d {whole % 86400 // 3600} h"


def _parse_time(value: Any) -> datetime | str | None:
    if not value:
        return None
    if not isinstance(value, str):
        return str(value)
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return value


def attempt_rows(attempt_log: Any) -> list[dict[str, Any]]:
    """The attempt log prepared for the detail template, oldest attempt first.

    Times are parsed into aware datetimes so the template shows them in the
    active time zone; anything malformed is shown as stored.
    """
    if not isinstance(attempt_log, list):
        return []
    rows = []
    for number, entry in enumerate(attempt_log, start=1):
        if not isinstance(entry, dict):
            continue
        started = _parse_time(entry.get("started_at"))
        finished = _parse_time(entry.get("finished_at"))
        duration = ""
        if isinstance(started, datetime) and isinstance(finished, datetime):
            elapsed = (finished - started).total_seconds()
            duration = format_seconds(elapsed, precise=True)
        rows.append(
            {
                "attempt": entry.get("attempt") or number,
                "worker_id": entry.get("worker_id") or "",
                "started_at": started,
                "finished_at": finished,
                "duration": duration,
                "outcome": entry.get("outcome") or "",
                "error_class": entry.get("error_class") or "",
                "message": entry.get("message") or "",
                "traceback": entry.get("traceback") or "",
            }
        )
    return rows
