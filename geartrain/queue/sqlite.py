"""SQLite: one writer at a time.

Relies on SQLite 3.35+ for ``UPDATE … RETURNING``. The claim is a single statement, so
it is atomic on its own and takes the database's write lock once; concurrent workers
wait for the lock through the busy timeout instead of failing with "database is
locked". geartrain's system checks ask for WAL mode (readers never block the writer) and
``"transaction_mode": "IMMEDIATE"`` (Django 5.1+), which makes every ``atomic()`` block
take the write lock up front, so no transaction fails when it upgrades from reading to
writing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from geartrain.queue.base import ClaimStrategy


class SQLiteStrategy(ClaimStrategy):
    """Claims with one ``UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING id``."""

    vendor: ClassVar[str] = "sqlite"

    def claim_ids(
        self, queues: Sequence[str], limit: int, owner: str, lease_seconds: float
    ) -> list[int]:
        return self._claim_returning(queues, limit, owner, lease_seconds, "")
