"""One module per ``geartrain`` subcommand: ``add_arguments`` and ``handle``."""

from __future__ import annotations

from django.conf import settings

from geartrain.checks import BACKEND_PATH


def configured_queues() -> list[str] | None:
    """Queues declared by geartrain task backends; ``None`` when any is unrestricted."""
    queues: set[str] = set()
    for params in getattr(settings, "TASKS", {}).values():
        if params.get("BACKEND") != BACKEND_PATH:
            continue
        declared = params.get("QUEUES", ["default"])
        if not declared:
            return None
        queues.update(declared)
    return sorted(queues) or ["default"]
