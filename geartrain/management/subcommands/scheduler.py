"""``geartrain scheduler [--once]``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from geartrain.management.subcommands.schedules import utc
from geartrain.scheduler.loop import Scheduler


def add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--once",
        action="store_true",
        help="Run one tick (fire every slot due now), print what it did and exit.",
    )


def handle(command: BaseCommand, options: dict[str, Any]) -> int:
    scheduler = Scheduler()
    if not options["once"]:
        return scheduler.run()
    report = scheduler.tick()
    command.stdout.write(
        f"Tick: {report.schedules} due schedule(s), {report.fired} slot(s) fired, "
        f"{report.skipped} skipped, {report.held} held."
    )
    if report.next_due is None:
        command.stdout.write("Next due: none (every schedule is disabled or ended).")
    else:
        command.stdout.write(f"Next due: {utc(report.next_due)} UTC")
    return 0
