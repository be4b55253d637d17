"""``geartrain import FILE [--format json|yaml] [--dry-run]``: a file → database.

Reads what ``geartrain export`` writes and applies it with the same sync as
``geartrain sync``: pipelines in the file are created or updated, others are left
alone.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from geartrain.pipelines import code, sync
from geartrain.pipelines.spec import InvalidPipeline


def add_arguments(parser: Any) -> None:
    parser.add_argument("file", help="A JSON or YAML file; - reads standard input.")
    parser.add_argument(
        "--format",
        choices=code.FORMATS,
        help="json or yaml (default: yaml for a .yaml/.yml file, else json).",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="Report what would change; write nothing.",
    )


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        raise CommandError(
            f"Cannot read {path!r}: {why}. Give the path of a file written by "
            f"`geartrain export`."
        ) from exc


def handle(command: BaseCommand, options: dict[str, Any]) -> int:
    path = options["file"]
    source = "Standard input" if path == "-" else f"File {path!r}"
    text = _read(path)
    try:
        specs = code.load_document(
            text, code.format_of(path, options["format"]), source
        )
        report = sync.sync(specs, dry_run=options["dry_run"])
    except ImproperlyConfigured as exc:
        raise CommandError(str(exc)) from exc
    except InvalidPipeline as exc:
        raise CommandError(
            f"Nothing was imported from {path}; fix these problems first:\n{exc}"
        ) from exc
    for line in report.lines(not_in_code=False):
        command.stdout.write(line)
    return 0
