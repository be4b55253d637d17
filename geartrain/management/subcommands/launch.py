"""``geartrain launch NAME [--arg key=value …] [--wait]``.

``--arg`` values are JSON when they parse as JSON (``n=5`` is the number 5,
``flag=true`` a boolean), else strings (``day=2024-01-31``). ``--wait`` prints the
run's progress until it ends and exits 0 when it succeeded (non-critical failures
included), 1 when it failed or was cancelled. The time left is estimated from the
step weights; see :class:`geartrain.pipelines.api.Progress`.
"""

from __future__ import annotations

import argparse
import getpass
import json
import math
import time
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from geartrain.compat import InvalidTask
from geartrain.exceptions import InvalidArguments
from geartrain.models import RunStatus, Trigger
from geartrain.pipelines import api, launching
from geartrain.pipelines.spec import InvalidPipeline

POLL_SECONDS = 0.5
QUIET_SECONDS = 10.0  # repeat an unchanged progress line this often


def _not_a_constant(name: str) -> Any:
    raise ValueError(name)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def argument(text: str) -> tuple[str, Any]:
    """Parse ``key=value``; the value is JSON when it parses, else the string."""
    key, sep, raw = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no '='. Write each argument as key=value, such as "
            f"--arg day=2024-01-31 or --arg limit=100."
        )
    if not key.strip():
        raise argparse.ArgumentTypeError(
            f"{text!r} has an empty key. Write each argument as key=value, such as "
            f"--arg limit=100."
        )
    try:
        value = json.loads(raw, parse_constant=_not_a_constant, parse_float=_finite)
    except ValueError:
        value = raw
    return key.strip(), value


def add_arguments(parser: Any) -> None:
    parser.add_argument("name", help="The pipeline to launch.")
    parser.add_argument(
        "--arg",
        dest="runtime_args",
        action="append",
        type=argument,
        default=[],
        metavar="KEY=VALUE",
        help="A runtime argument; repeat for more. Values are JSON when they parse.",
    )
    parser.add_argument(
        "--wait",
        action="store_true",
        help="Show progress until the run ends; exit 1 if it failed or was cancelled.",
    )


def os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "command"


def _seconds(value: timedelta) -> str:
    seconds = value.total_seconds()
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def progress_line(p: api.Progress) -> str:
    """``[12.0s] steps 3/7 done, 2 running, 1 failed, about 8.0s left``."""
    left = "time left unknown" if p.left is None else f"about {_seconds(p.left)} left"
    return (
        f"[{_seconds(p.elapsed)}] steps {p.done}/{p.total} done, {p.running} "
        f"running, {p.failed} failed, {left}"
    )


def _follow(command: BaseCommand, run_id: int) -> api.Progress:
    shown: tuple[int, int, int] | None = None
    shown_at = 0.0
    while True:
        now = api.progress(run_id)
        key = (now.done, now.running, now.failed)
        if now.final:
            return now
        if key != shown or time.monotonic() - shown_at >= QUIET_SECONDS:
            command.stdout.write(progress_line(now))
            shown, shown_at = key, time.monotonic()
        time.sleep(POLL_SECONDS)


def _wait(command: BaseCommand, run_id: int, label: str) -> int:
    try:
        end = _follow(command, run_id)
    except KeyboardInterrupt:
        command.stdout.write(
            f"Stopped waiting; {label} goes on. Cancel it with "
            f"`geartrain cancel {run_id}`."
        )
        return 130
    command.stdout.write(
        f"{label} {end.outcome} after {_seconds(end.elapsed)}: steps {end.done}/"
        f"{end.total} done, {end.failed} failed."
    )
    return 0 if end.status == RunStatus.SUCCEEDED else 1


def handle(command: BaseCommand, options: dict[str, Any]) -> int:
    name = options["name"]
    arguments: dict[str, Any] = {}
    for key, value in options["runtime_args"]:
        if key in arguments:
            raise CommandError(
                f"--arg {key!r} is given twice. Give each runtime argument once."
            )
        arguments[key] = value
    try:
        run = launching.launch(
            name, arguments, trigger=Trigger.MANUAL, launched_by=os_user()
        )
    except (launching.LaunchRefused, InvalidArguments, InvalidTask) as exc:
        raise CommandError(str(exc)) from exc
    except InvalidPipeline as exc:
        raise CommandError(
            f"Pipeline {name!r} cannot run; fix its definition first:\n{exc}"
        ) from exc
    label = f"Run {run.pk} of pipeline {name!r}"
    steps = run.step_runs.count()
    command.stdout.write(
        f"Launched run {run.pk} of pipeline {name!r} with {steps} "
        f"step{'' if steps == 1 else 's'}."
    )
    if not options["wait"]:
        return 0
    return _wait(command, run.pk, label)
