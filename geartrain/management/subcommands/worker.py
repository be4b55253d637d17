"""``geartrain worker``."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from geartrain.conf import get_settings
from geartrain.management import arguments
from geartrain.management.subcommands import configured_queues
from geartrain.worker.supervisor import BURST_WITH_SCHEDULER, Supervisor


def add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--queues",
        type=arguments.queue_list,
        help="Comma-separated queues to serve (default: all configured queues).",
    )
    parser.add_argument(
        "--concurrency",
        type=arguments.positive_int,
        default=None,
        help="Number of child processes (default: the number of CPUs).",
    )
    parser.add_argument(
        "--burst", action="store_true", help="Exit when no ready job is left."
    )
    parser.add_argument(
        "--max-jobs-per-child",
        type=arguments.positive_int,
        default=None,
        help="Replace a child after it ran this many jobs.",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=arguments.non_negative_float,
        default=None,
        help="Seconds running jobs get to finish after SIGTERM (default: setting).",
    )
    parser.add_argument(
        "--with-scheduler",
        action="store_true",
        help="Also run a scheduler in one more process (fires due schedule slots).",
    )


def handle(command: BaseCommand, options: dict[str, Any]) -> int:
    if options["burst"] and options["with_scheduler"]:
        raise CommandError(BURST_WITH_SCHEDULER)
    known = configured_queues()
    queues = options["queues"] or known or ["default"]
    if known is not None:
        unknown = [q for q in queues if q not in known]
        if unknown:
            raise CommandError(
                f"Queue {unknown[0]!r} is not configured (configured: "
                f"{', '.join(known)}). Add it to TASKS[...]['QUEUES'] or pick a "
                f"configured queue."
            )
    supervisor = Supervisor(
        queues=queues,
        concurrency=options["concurrency"] or os.cpu_count() or 1,
        conf=get_settings(),
        burst=options["burst"],
        max_jobs_per_child=options["max_jobs_per_child"],
        shutdown_timeout=options["shutdown_timeout"],
        with_scheduler=options["with_scheduler"],
    )
    return supervisor.run()
