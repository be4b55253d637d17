"""One module per ``geartrain`` subcommand: ``add_arguments`` and ``handle``."""

from __future__ import annotations

from geartrain.conf import configured_queues

__all__ = ["configured_queues"]
