"""argparse ``type=`` validators whose errors state the rule and the bad value."""

from __future__ import annotations

import argparse
import re
from datetime import timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_DURATION = timedelta(days=36500)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")


def duration(text: str) -> timedelta:
    """Parse ``30s``, ``15m``, ``1h``, ``14d`` or ``2w``."""
    match = _DURATION.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration. Write a number followed by s, m, h, d or w, "
            f"such as 90s, 1h or 14d."
        )
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds > MAX_DURATION.total_seconds():
        raise argparse.ArgumentTypeError(
            f"{text!r} is longer than 100 years. Use a shorter duration, such as 365d."
        )
    return timedelta(seconds=seconds)


def positive_int(text: str) -> int:
    """A whole number of 1 or more."""
    digits = text.strip().removeprefix("+")
    if not digits.isdigit() or int(digits) < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number of 1 or more."
        )
    return int(digits)


def non_negative_float(text: str) -> float:
    """A number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds of 0 or more."
        )
    return value


def queue_list(text: str) -> list[str]:
    """Comma-separated queue names, none empty."""
    names = [name.strip() for name in text.split(",")]
    if not text.strip() or any(not name for name in names):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of queue names, such as "
            f"default,emails."
        )
    return names
