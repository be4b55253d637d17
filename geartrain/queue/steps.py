"""Marking the step runs of claimed jobs running, in one statement.

A pipeline step counts as running from the moment a worker holds its job. This sits
with the claim (the core layer) because a worker's claim marks them in the same
statement (PostgreSQL) or the same transaction (SQLite, MariaDB/MySQL); see
:meth:`geartrain.queue.base.ClaimStrategy.claim_batch`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.db import connections

from geartrain.models import RunStatus, StepRun


def start_steps(alias: str, step_run_ids: Sequence[int], now: datetime) -> set[int]:
    """Mark pending step runs running; return the ids marked.

    Steps with ``prevent_overlap`` are left alone (they need their own check), and so
    are steps no longer pending: the caller checks those one by one.
    """
    ids = sorted(set(step_run_ids))
    if not ids:
        return set()
    conn = connections[alias]
    table = StepRun._meta.db_table
    marks = ", ".join(["%s"] * len(ids))
    sql = (
        f"UPDATE {table} SET status = %s, started_at = %s "
        f"WHERE id IN ({marks}) AND status = %s AND prevent_overlap = %s"
    )
    params = [
        RunStatus.RUNNING,
        conn.ops.adapt_datetimefield_value(now),
        *ids,
        RunStatus.PENDING,
        False,
    ]
    if conn.vendor == "postgresql" and not conn.in_atomic_block:
        # Like the claim, this commit need not wait for the disk: a start lost in a
        # crash leaves the step pending, and its outcome fills started_at from the
        # job. set_config(..., true) lasts for this statement's transaction only (so
        # never inside a caller's: a worker's outcomes must commit durably).
        sql += " AND set_config('synchronous_commit', 'off', true) IS NOT NULL"
    with conn.cursor() as cursor:
        if conn.vendor in ("postgresql", "sqlite"):
            cursor.execute(f"{sql} RETURNING id", params)
            return {int(row[0]) for row in cursor.fetchall()}
        cursor.execute(sql, params)
        if not cursor.rowcount:
            return set()
    # Steps already running (a retry) are in too: step_started() lets them run.
    started = StepRun.objects.using(alias).filter(pk__in=ids, status=RunStatus.RUNNING)
    return set(started.values_list("pk", flat=True))
