"""``geartrain export [NAME…] [--format json|yaml] [--output FILE]``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from geartrain.conf import get_settings
from geartrain.models import Pipeline
from geartrain.pipelines import code


def add_arguments(parser: Any) -> None:
    parser.add_argument("names", nargs="*", help="Pipelines to export (default: all).")
    parser.add_argument(
        "--format",
        choices=code.FORMATS,
        help="json or yaml (default: yaml for a .yaml/.yml output file, else json).",
    )
    parser.add_argument("--output", help="Write to this file instead of stdout.")


def handle(command: BaseCommand, options: dict[str, Any]) -> int:
    names = list(dict.fromkeys(options["names"]))
    rows = Pipeline.objects.using(get_settings().DATABASE).order_by("name")
    found = {p.name: p for p in (rows.filter(name__in=names) if names else rows)}
    missing = [name for name in names if name not in found]
    if missing:
        known = ", ".join(repr(name) for name in rows.values_list("name", flat=True))
        raise CommandError(
            f"No pipeline is named {missing[0]!r}. Export one of the pipelines in the "
            f"database: {known or '(none)'}."
        )
    pipelines = [found[name] for name in names] if names else list(found.values())
    output = options["output"]
    fmt = code.format_of(output or "", options["format"])
    try:
        text = code.dump_document([p.to_spec() for p in pipelines], fmt)
    except ImproperlyConfigured as exc:
        raise CommandError(str(exc)) from exc
    if not output:
        command.stdout.write(text, ending="")
        return 0
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CommandError(
            f"Cannot write {output!r}: {exc.strerror}. Give a path in a folder you can "
            f"write to."
        ) from exc
    command.stdout.write(f"Exported {len(pipelines)} pipeline(s) to {output}.")
    return 0
