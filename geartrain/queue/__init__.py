"""The broker layer: the only code that claims, acknowledges, releases and renews jobs.

:func:`get_strategy` picks the claim strategy for a database alias by its vendor.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from geartrain.queue.base import PROMOTE_BATCH, Claimed, ClaimStrategy, SuccessAck
from geartrain.queue.mysql import MySQLStrategy
from geartrain.queue.postgresql import PostgreSQLStrategy
from geartrain.queue.rows import BulkFixed
from geartrain.queue.sqlite import SQLiteStrategy

STRATEGIES: dict[str, type[ClaimStrategy]] = {
    "postgresql": PostgreSQLStrategy,
    "mysql": MySQLStrategy,
    "sqlite": SQLiteStrategy,
}


def get_strategy(alias: str) -> ClaimStrategy:
    """The claim strategy for database ``alias``.

    Raises:
        ImproperlyConfigured: for a database vendor geartrain does not support.
    """
    vendor = connections[alias].vendor
    try:
        return STRATEGIES[vendor](alias)
    except KeyError:
        raise ImproperlyConfigured(
            f"Database {alias!r} is {vendor!r}, which geartrain does not support. "
            f"Use PostgreSQL, MariaDB/MySQL or SQLite."
        ) from None


__all__ = [
    "PROMOTE_BATCH",
    "BulkFixed",
    "ClaimStrategy",
    "Claimed",
    "SuccessAck",
    "get_strategy",
]
