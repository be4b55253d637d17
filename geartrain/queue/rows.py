"""Multi-row ``INSERT … VALUES … RETURNING id`` for ``bulk_enqueue`` off PostgreSQL.

SQLite (3.35+) and MariaDB (10.5+) return the ids of a multi-row insert; MySQL does
not, and keeps the ORM's path (``jobs.bulk_insert``). Django's ``bulk_create`` spends
about 0.2 ms of Python per row compiling each value through its field; the values here
are already what the columns store (JSON text, adapted datetimes), so a row costs a
tuple of parameters. Rows go in statements of at most :data:`ROWS_PER_STATEMENT`, fewer
where the database takes fewer parameters, all in one transaction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import transaction

ROWS_PER_STATEMENT = 2000
COLUMNS = (
    "task_path",
    "backend",
    "queue",
    "priority",
    "args",
    "kwargs",
    "status",
    "run_after",
    "enqueued_at",
    "attempts",
    "postpones",
    "attempt_log",
)
# One row: the nine values bulk_enqueue passes, then the three every new job starts
# with (no attempts, no postpones, an empty attempt log).
ROW = "(%s, %s, %s, %s, %s, %s, %s, %s, %s, 0, 0, '[]')"
PARAMS_PER_ROW = ROW.count("%s")


@dataclasses.dataclass(frozen=True, slots=True)
class BulkFixed:
    """What every job of one bulk insert shares."""

    task_path: str
    backend: str
    queue: str
    priority: int
    status: str
    run_after: datetime
    enqueued_at: datetime


def rows_per_statement(connection: Any) -> int:
    """How many rows one statement may carry on ``connection``.

    Django knows SQLite's parameter limit (read from the library on Django 6, assumed
    to be 999 on 5.2); MariaDB takes 65,535 placeholders.
    """
    limit = connection.features.max_query_params or 65535
    return max(1, min(ROWS_PER_STATEMENT, limit // PARAMS_PER_ROW))


def insert_rows(
    connection: Any, table: str, fixed: BulkFixed, calls: Sequence[tuple[str, str]]
) -> list[int]:
    """Insert one row per ``(args JSON, kwargs JSON)``; their ids, in ``calls`` order.

    Every row shares ``fixed``. The ids of one statement are allocated in row order;
    ``RETURNING`` may list them in any order, so they are sorted.
    """
    adapt = connection.ops.adapt_datetimefield_value
    head = (fixed.task_path, fixed.backend, fixed.queue, fixed.priority)
    tail = (fixed.status, adapt(fixed.run_after), adapt(fixed.enqueued_at))
    size = rows_per_statement(connection)
    columns = ", ".join(connection.ops.quote_name(c) for c in COLUMNS)
    ids: list[int] = []
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        for start in range(0, len(calls), size):
            chunk = calls[start : start + size]
            params: list[Any] = []
            for args, kwargs in chunk:
                params += (*head, args, kwargs, *tail)
            values = ", ".join([ROW] * len(chunk))
            cursor.execute(
                f"INSERT INTO {table} ({columns}) VALUES {values} RETURNING id", params
            )
            ids += sorted(int(row[0]) for row in cursor.fetchall())
    return ids
