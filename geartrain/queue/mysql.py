"""MariaDB 10.6+ and MySQL 8.0+: ``SELECT … FOR UPDATE SKIP LOCKED``, then ``UPDATE``.

Neither has ``UPDATE … RETURNING`` (MariaDB has it only for INSERT and DELETE), so the
claim is two statements in one transaction: lock up to *n* ready rows that no other
transaction holds (SKIP LOCKED, MariaDB 10.6 / MySQL 8.0), then mark exactly those rows
running. Django runs MySQL connections at READ COMMITTED, which keeps the locked range
to the rows returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from django.db import transaction

from geartrain.queue.base import ClaimStrategy


class MySQLStrategy(ClaimStrategy):
    """Claims with a locking read that skips rows other workers hold."""

    vendor: ClassVar[str] = "mysql"

    def _promote_sql(self) -> str:
        # No LIMIT in an IN (subquery) here, but a one-table UPDATE takes ORDER BY
        # and LIMIT. A row another worker is promoting is waited for, then left
        # alone: it is no longer scheduled.
        return (
            f"UPDATE {self.table} SET status = 'ready' WHERE status = 'scheduled' "
            "AND run_after <= %s ORDER BY run_after LIMIT %s"
        )

    def claim_ids(
        self, queues: Sequence[str], limit: int, owner: str, lease_seconds: float
    ) -> list[int]:
        now, expires = self._times(lease_seconds)
        where, qparams = self._ready_sql(queues)
        select = (
            f"SELECT id FROM {self.table} WHERE {where} LIMIT %s FOR UPDATE SKIP LOCKED"
        )
        with transaction.atomic(using=self.alias), self.connection.cursor() as cursor:
            cursor.execute(select, [*qparams, limit])
            ids = [int(r[0]) for r in cursor.fetchall()]
            if not ids:
                return []
            marks = ", ".join(["%s"] * len(ids))
            cursor.execute(
                f"UPDATE {self.table} SET {self._set_claimed_sql()} "
                f"WHERE id IN ({marks})",
                [owner, expires, now, now, *ids],
            )
        return ids
