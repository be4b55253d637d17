"""``geartrain status``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from geartrain import operations
from geartrain.models import JobStatus


def add_arguments(parser: Any) -> None:
    """``status`` takes no options."""


def handle(command: BaseCommand, options: dict[str, Any]) -> int:
    snap = operations.status()
    out = command.stdout
    columns = [s.value for s in JobStatus]
    out.write("Jobs by queue and status:")
    out.write("  " + "queue".ljust(20) + "".join(c.rjust(11) for c in columns))
    if not snap.counts:
        out.write("  (no jobs)")
    for queue, counts in sorted(snap.counts.items()):
        cells = "".join(str(counts.get(c, 0)).rjust(11) for c in columns)
        out.write("  " + queue.ljust(20) + cells)
    age = snap.oldest_ready_age
    out.write(
        "Oldest ready job: "
        + ("none" if age is None else f"waiting {age.total_seconds():.1f}s")
    )
    out.write(f"Live workers: {len(snap.workers)}")
    for worker in snap.workers:
        seen = (snap.now - worker.last_heartbeat_at).total_seconds()
        state = " (stopping)" if worker.stopping else ""
        out.write(
            f"  {worker.id} host={worker.hostname} pid={worker.pid} "
            f"concurrency={worker.concurrency} queues={','.join(worker.queues)} "
            f"heartbeat={seen:.0f}s ago{state}"
        )
    return 0
