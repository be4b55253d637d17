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
        now, expires = self._times(lease_seconds)
        where, qparams = self._ready_sql(queues)
        sql = (
            f"UPDATE {self.table} SET {self._set_claimed_sql()} "
            f"WHERE id IN (SELECT id FROM {self.table} WHERE {where} LIMIT %s) "
            "RETURNING id, priority, run_after"
        )
        params = [owner, expires, now, now, *qparams, limit]
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        # RETURNING gives no order guarantee: restore the claim order.
        rows.sort(key=lambda r: (-r[1], r[2], r[0]))
        return [int(r[0]) for r in rows]
