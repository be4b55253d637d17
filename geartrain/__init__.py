"""geartrain: background work for Django, from one job to cron-scheduled pipelines.

Public API::

    from geartrain import task, bulk_enqueue, Postpone
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Postpone", "__version__", "bulk_enqueue", "task"]

if TYPE_CHECKING:
    from geartrain.backends import bulk_enqueue
    from geartrain.exceptions import Postpone
    from geartrain.tasks import task


def __getattr__(name: str) -> Any:
    # Lazy, so that importing geartrain never touches Django settings or models.
    if name == "task":
        from geartrain.tasks import task

        return task
    if name == "bulk_enqueue":
        from geartrain.backends import bulk_enqueue

        return bulk_enqueue
    if name == "Postpone":
        from geartrain.exceptions import Postpone

        return Postpone
    raise AttributeError(f"module 'geartrain' has no attribute {name!r}")
