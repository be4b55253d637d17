"""PostgreSQL: one ``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING``.

Relies on ``FOR UPDATE SKIP LOCKED`` (PostgreSQL 9.5+): concurrent workers each lock a
different set of ready rows and never wait for one another. The whole claim is one
statement and one round trip in autocommit mode.

Workers wake on ``LISTEN geartrain_job`` (through :mod:`geartrain.queue.notify`): a
statement-level trigger on the job table (created by migration 0002) calls
``pg_notify`` after inserts, and PostgreSQL delivers it when the inserting transaction
commits (so a rolled-back enqueue wakes nobody).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from django.utils import timezone

from geartrain import serialization
from geartrain.models import Job, RunStatus, StepRun
from geartrain.queue.base import Claimed, ClaimStrategy, SuccessAck
from geartrain.queue.notify import Listener
from geartrain.queue.rows import BulkFixed

CHANNEL = "geartrain_job"
LOCK = "FOR UPDATE SKIP LOCKED"


class PostgreSQLStrategy(ClaimStrategy):
    """Claims with SKIP LOCKED and waits with LISTEN/NOTIFY."""

    vendor: ClassVar[str] = "postgresql"
    supports_notify: ClassVar[bool] = True
    # Promotion: rows another worker is promoting are skipped, not waited for.
    promote_lock: ClassVar[str] = LOCK
    promote_ids_in: ClassVar[str] = "id = ANY(ARRAY({}))"

    def __init__(self, alias: str) -> None:
        super().__init__(alias)
        self._listener: Listener | None = None

    def claim_ids(
        self, queues: Sequence[str], limit: int, owner: str, lease_seconds: float
    ) -> list[int]:
        return self._claim_returning(
            queues, limit, owner, lease_seconds, LOCK, ids_in=self._ids_in()
        )

    def claim(
        self, queues: Sequence[str], limit: int, owner: str, lease_seconds: float
    ) -> list[Job]:
        """:meth:`claim_ids`, with the claimed rows read by the same statement."""
        return self._claim_jobs_returning(
            queues, limit, owner, lease_seconds, LOCK, ids_in=self._ids_in()
        )

    def claim_batch(
        self, queues: Sequence[str], limit: int, owner: str, lease_seconds: float
    ) -> Claimed:
        """:meth:`claim`, and the claimed jobs' step runs marked running with it.

        One statement: the claim's ``UPDATE … RETURNING`` feeds a second ``UPDATE``
        of the pending step runs without overlap rules (a step run is ``running`` as
        soon as a worker holds its job; see ``starts.steps_started``, which the other
        vendors call after the claim). A job whose step run it did not mark (a retry,
        ``prevent_overlap``, a step skipped since) is checked on its own before it
        runs.
        """
        sql, params = self._claim_sql(
            queues, limit, owner, lease_seconds, LOCK, self._ids_in()
        )
        steps = StepRun._meta.db_table
        statement = (
            f"WITH c AS ({sql} RETURNING {self._job_columns()}), "
            f"s AS (UPDATE {steps} AS s SET status = %s, started_at = %s FROM c "
            "WHERE s.id = c.step_run_id AND s.status = %s AND NOT s.prevent_overlap "
            "RETURNING s.id) "
            "SELECT c.*, s.id AS started_step FROM c LEFT JOIN s "
            "ON s.id = c.step_run_id"
        )
        now = self.connection.ops.adapt_datetimefield_value(timezone.now())
        params += [RunStatus.RUNNING, now, RunStatus.PENDING]
        jobs = self._in_claim_order(
            Job.objects.using(self.alias).raw(statement, params)
        )
        started = {j.started_step for j in jobs if j.started_step is not None}
        return Claimed(jobs, started)

    def _ids_in(self) -> str:
        # "= ANY(ARRAY(subquery))" makes the planner fetch the locked ids first and
        # then update them by primary key; "IN (subquery)" can plan as a sequential
        # scan of the whole table. The claim's commit need not wait for the disk:
        # a claim lost in a crash only returns its jobs to the queue (see
        # docs/explanation/delivery-guarantees.md), so synchronous_commit is off for
        # this one transaction (set_config(..., true) is transaction-local). Not
        # inside a caller's transaction (a worker claiming with its outcomes): that
        # one's commit must stay durable.
        ids_in = "id = ANY(ARRAY({}))"
        if not self.connection.in_atomic_block:
            ids_in += " AND set_config('synchronous_commit', 'off', true) IS NOT NULL"
        return ids_in

    def bulk_insert(
        self, fixed: BulkFixed, calls: Sequence[tuple[str, str]]
    ) -> list[int]:
        """Insert one ready or scheduled job per ``(args JSON, kwargs JSON)`` pair.

        One statement for the whole batch; the columns all jobs share are passed once.
        ``WITH ORDINALITY … ORDER BY`` keeps the ids in the order of ``calls``.
        """
        ops = self.connection.ops
        sql = (
            f"INSERT INTO {self.table} (task_path, backend, queue, priority, args, "
            "kwargs, status, run_after, enqueued_at, attempts, postpones, attempt_log) "
            "SELECT %s, %s, %s, %s, u.a, u.k, %s, %s, %s, 0, 0, '[]'::jsonb "
            "FROM unnest(%s::jsonb[], %s::jsonb[]) WITH ORDINALITY AS u(a, k, n) "
            "ORDER BY u.n RETURNING id"
        )
        params = [
            fixed.task_path,
            fixed.backend,
            fixed.queue,
            fixed.priority,
            fixed.status,
            ops.adapt_datetimefield_value(fixed.run_after),
            ops.adapt_datetimefield_value(fixed.enqueued_at),
            [a for a, _ in calls],
            [k for _, k in calls],
        ]
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return [int(row[0]) for row in cursor.fetchall()]

    def ack_successes(self, owner: str, acks: Sequence[SuccessAck]) -> int:
        """Record many successes with one statement over arrays (one plan, one trip)."""
        if not acks:
            return 0
        with self.connection.cursor() as cursor:
            cursor.execute(*self._ack_sql(owner, acks))
            return int(cursor.rowcount)

    def write_successes(self, owner: str, acks: Sequence[SuccessAck]) -> list[int]:
        """:meth:`ack_successes`, returning the ids written."""
        if not acks:
            return []
        sql, params = self._ack_sql(owner, acks)
        with self.connection.cursor() as cursor:
            cursor.execute(f"{sql} RETURNING j.id", params)
            return [int(row[0]) for row in cursor.fetchall()]

    def _ack_sql(self, owner: str, acks: Sequence[SuccessAck]) -> tuple[str, list[Any]]:
        ops = self.connection.ops
        sql = (
            f"UPDATE {self.table} AS j SET status = 'succeeded', finished_at = v.f, "
            "return_value = v.r, attempt_log = v.l, lease_owner = NULL, "
            "lease_expires_at = NULL "
            "FROM unnest(%s::bigint[], %s::timestamptz[], %s::jsonb[], %s::jsonb[]) "
            "AS v(id, f, r, l) "
            "WHERE j.id = v.id AND j.lease_owner = %s AND j.status = 'running'"
        )
        params = [
            [a.job_id for a in acks],
            [ops.adapt_datetimefield_value(a.finished_at) for a in acks],
            [serialization.dumps(a.return_value) for a in acks],
            [serialization.dumps(a.attempt_log) for a in acks],
            owner,
        ]
        return sql, params

    def wait_for_work(self, timeout: float, wake: Sequence[int] = ()) -> bool:
        """Sleep until a NOTIFY on ``geartrain_job`` arrives or ``timeout`` passes.

        Or until a descriptor in ``wake`` is readable (the caller reads it). Returns
        whether it was notified. See :class:`geartrain.queue.notify.Listener`: a
        dropped connection is noticed at once and replaced, and meanwhile the worker
        polls.
        """
        if self._listener is None:
            self._listener = Listener(self.alias, CHANNEL)
        return self._listener.wait(timeout, wake)

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
