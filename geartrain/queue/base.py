"""What every claim strategy shares: acknowledgements, releases, lease renewal.

A *lease* is a claimed job's reservation: ``lease_owner`` (the worker child's id) and
``lease_expires_at``. Every write a worker makes to a claimed job is guarded by
``status = 'running' AND lease_owner = <me>``, so a worker whose lease was taken away
(after it was presumed dead) can never overwrite the job's newer state.
"""

from __future__ import annotations

import dataclasses
import select
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

from django.db import connections, transaction
from django.db.models import Case, F, JSONField, Min, Value, When
from django.utils import timezone

from geartrain.models import Job, JobStatus, RunStatus, StepRun
from geartrain.queue.rows import BulkFixed, insert_rows

PROMOTE_BATCH = 1000
"""Most scheduled jobs one promotion statement makes ready."""


@dataclasses.dataclass(frozen=True, slots=True)
class SuccessAck:
    """A finished, successful job waiting to be written in a batch."""

    job_id: int
    finished_at: datetime
    return_value: Any
    attempt_log: list[dict[str, Any]]


@dataclasses.dataclass(frozen=True, slots=True)
class Claimed:
    """A claimed batch, in claim order, and the step runs its claim marked running.

    ``started_steps`` is None where the claim did not mark them: the caller marks the
    batch's step runs itself (``starts.steps_started``).
    """

    jobs: list[Job]
    started_steps: set[int] | None = None


class ClaimStrategy:
    """Base of the per-vendor strategies; subclasses implement :meth:`claim_ids`."""

    vendor: ClassVar[str] = ""
    supports_notify: ClassVar[bool] = False
    promote_lock: ClassVar[str] = ""
    promote_ids_in: ClassVar[str] = "id IN ({})"

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.table = Job._meta.db_table

    @property
    def connection(self) -> Any:
        return connections[self.alias]

    @property
    def supports_fast_bulk_insert(self) -> bool:
        """Whether :meth:`bulk_insert` works here.

        Every supported vendor but MySQL returns the ids of a multi-row insert
        (SQLite 3.35+, MariaDB 10.5+); MySQL keeps the ORM's path.
        """
        return bool(self.connection.features.can_return_rows_from_bulk_insert)

    def claim_ids(
        self, queues: Sequence[str], limit: int, owner: str, lease_seconds: float
    ) -> list[int]:
        """Mark up to ``limit`` ready jobs running for ``owner``; return their ids."""
        raise NotImplementedError

    def claim(
        self, queues: Sequence[str], limit: int, owner: str, lease_seconds: float
    ) -> list[Job]:
        """Claim up to ``limit`` jobs, in claim order (priority, then oldest)."""
        ids = self.claim_ids(queues, limit, owner, lease_seconds)
        if not ids:
            return []
        found = {j.pk: j for j in Job.objects.using(self.alias).filter(pk__in=ids)}
        return [found[i] for i in ids if i in found]

    def claim_batch(
        self, queues: Sequence[str], limit: int, owner: str, lease_seconds: float
    ) -> Claimed:
        """:meth:`claim` for a worker, whose jobs' step runs must be marked running.

        PostgreSQL marks them in the claim's statement. Here the caller marks them
        after the claim (``starts.steps_started``), in a transaction of its own: on
        SQLite, one transaction for both would hold the single write lock while the
        claimed rows are read and turned into jobs, and the other children wait
        (measured: the plain-job drain 50 % slower).
        """
        return Claimed(self.claim(queues, limit, owner, lease_seconds))

    # Shared SQL fragments -------------------------------------------------------

    def _set_claimed_sql(self) -> str:
        """The SET clause of a claim; params: owner, lease_expires_at, now, now."""
        return (
            "status = 'running', lease_owner = %s, lease_expires_at = %s, "
            "attempts = attempts + 1, last_attempted_at = %s, "
            "started_at = COALESCE(started_at, %s), unique_key = NULL"
        )

    def _ready_sql(self, queues: Sequence[str]) -> tuple[str, list[Any]]:
        """WHERE and ORDER BY of the ready jobs of ``queues``."""
        marks = ", ".join(["%s"] * len(queues))
        sql = (
            f"status = 'ready' AND queue IN ({marks}) "
            "ORDER BY priority DESC, run_after, id"
        )
        return sql, list(queues)

    def _times(self, lease_seconds: float) -> tuple[Any, Any]:
        now = timezone.now()
        ops = self.connection.ops
        expires = now + timedelta(seconds=lease_seconds)
        return (
            ops.adapt_datetimefield_value(now),
            ops.adapt_datetimefield_value(expires),
        )

    def _json(self, field: str, value: Any) -> Any:
        json_field = Job._meta.get_field(field)
        assert isinstance(json_field, JSONField)  # noqa: S101 - our own model
        return json_field.get_db_prep_value(value, self.connection, prepared=False)

    def _claim_returning(
        self,
        queues: Sequence[str],
        limit: int,
        owner: str,
        lease_seconds: float,
        lock: str,
        ids_in: str = "id IN ({})",
    ) -> list[int]:
        """One-statement claim for vendors with ``UPDATE … RETURNING``.

        ``lock`` is appended to the inner SELECT (``FOR UPDATE SKIP LOCKED`` or "");
        ``ids_in`` is how the outer UPDATE matches the selected ids.
        """
        sql, params = self._claim_sql(queues, limit, owner, lease_seconds, lock, ids_in)
        with self.connection.cursor() as cursor:
            cursor.execute(f"{sql} RETURNING id, priority, run_after", params)
            rows = cursor.fetchall()
        # RETURNING gives no order guarantee: restore the claim order.
        rows.sort(key=lambda r: (-r[1], r[2], r[0]))
        return [int(r[0]) for r in rows]

    def _claim_jobs_returning(
        self,
        queues: Sequence[str],
        limit: int,
        owner: str,
        lease_seconds: float,
        lock: str,
        ids_in: str = "id IN ({})",
    ) -> list[Job]:
        """:meth:`_claim_returning` that returns the claimed rows whole.

        One statement instead of a claim and a read of the rows it claimed: the
        rows come back through ``RETURNING`` (a raw queryset applies the fields'
        database converters, as a read would).
        """
        sql, params = self._claim_sql(queues, limit, owner, lease_seconds, lock, ids_in)
        raw = Job.objects.using(self.alias).raw(
            f"{sql} RETURNING {self._job_columns()}", params
        )
        return self._in_claim_order(raw)

    def _job_columns(self) -> str:
        quote = self.connection.ops.quote_name
        return ", ".join(quote(f.column) for f in Job._meta.concrete_fields)

    @staticmethod
    def _in_claim_order(rows: Any) -> list[Any]:
        """Claimed rows in claim order: ``RETURNING`` gives no order guarantee."""
        return sorted(rows, key=lambda j: (-j.priority, j.run_after, j.pk))

    def _claim_sql(
        self,
        queues: Sequence[str],
        limit: int,
        owner: str,
        lease_seconds: float,
        lock: str,
        ids_in: str,
    ) -> tuple[str, list[Any]]:
        now, expires = self._times(lease_seconds)
        where, qparams = self._ready_sql(queues)
        inner = f"SELECT id FROM {self.table} WHERE {where} LIMIT %s {lock}"
        sql = (
            f"UPDATE {self.table} SET {self._set_claimed_sql()} "
            f"WHERE {ids_in.format(inner)}"
        )
        return sql, [owner, expires, now, now, *qparams, limit]

    def bulk_insert(
        self, fixed: BulkFixed, calls: Sequence[tuple[str, str]]
    ) -> list[int]:
        """Insert one ready or scheduled job per ``(args JSON, kwargs JSON)`` pair.

        Returns their ids in the order of ``calls``. Multi-row ``INSERT … RETURNING``
        statements (:mod:`geartrain.queue.rows`), only where
        :attr:`supports_fast_bulk_insert`.
        """
        return insert_rows(self.connection, self.table, fixed, calls)

    # Writes after a claim ---------------------------------------------------------

    def ack_successes(self, owner: str, acks: Sequence[SuccessAck]) -> int:
        """Record many successes in one round trip; returns rows written."""
        if not acks:
            return 0
        ops = self.connection.ops
        sql = (
            f"UPDATE {self.table} SET status = 'succeeded', finished_at = %s, "
            "return_value = %s, attempt_log = %s, lease_owner = NULL, "
            "lease_expires_at = NULL "
            "WHERE id = %s AND lease_owner = %s AND status = 'running'"
        )
        params = [
            (
                ops.adapt_datetimefield_value(a.finished_at),
                self._json("return_value", a.return_value),
                self._json("attempt_log", a.attempt_log),
                a.job_id,
                owner,
            )
            for a in acks
        ]
        # One transaction for the batch: in autocommit every row would commit (and
        # on SQLite take the write lock) on its own.
        with transaction.atomic(using=self.alias), self.connection.cursor() as cursor:
            cursor.executemany(sql, params)
            count = cursor.rowcount
        return int(count) if count is not None and count >= 0 else len(acks)

    def write_successes(self, owner: str, acks: Sequence[SuccessAck]) -> list[int]:
        """Record successes in the caller's transaction; return the ids written.

        The same write as :meth:`ack_successes`, for callers that must know which
        jobs were still leased by ``owner`` (pipeline steps advance only those).
        """
        ops = self.connection.ops
        sql = (
            f"UPDATE {self.table} SET status = 'succeeded', finished_at = %s, "
            "return_value = %s, attempt_log = %s, lease_owner = NULL, "
            "lease_expires_at = NULL "
            "WHERE id = %s AND lease_owner = %s AND status = 'running'"
        )
        written = []
        with self.connection.cursor() as cursor:
            for a in acks:
                cursor.execute(
                    sql,
                    [
                        ops.adapt_datetimefield_value(a.finished_at),
                        self._json("return_value", a.return_value),
                        self._json("attempt_log", a.attempt_log),
                        a.job_id,
                        owner,
                    ],
                )
                if cursor.rowcount == 1:
                    written.append(a.job_id)
        return written

    def finish(self, job_id: int, owner: str | None, **fields: Any) -> bool:
        """Write ``fields`` to a running job still leased by ``owner``."""
        qs = Job.objects.using(self.alias).filter(pk=job_id, status=JobStatus.RUNNING)
        if owner is not None:
            qs = qs.filter(lease_owner=owner)
        fields.setdefault("lease_owner", None)
        fields.setdefault("lease_expires_at", None)
        return qs.update(**fields) == 1

    def release(self, owner: str, job_ids: Sequence[int] | None = None) -> int:
        """Return claimed but unstarted jobs to ``ready``, undoing their attempt."""
        qs = Job.objects.using(self.alias).filter(
            status=JobStatus.RUNNING, lease_owner=owner
        )
        if job_ids is not None:
            if not job_ids:
                return 0
            qs = qs.filter(pk__in=list(job_ids))
        with transaction.atomic(using=self.alias):
            self._unstart_steps(qs)
            # MySQL evaluates SET assignments left to right with the new values, so
            # started_at (which reads attempts) must come before attempts changes.
            return self._release(qs)

    def _unstart_steps(self, jobs: Any) -> int:
        """Put back to pending the step runs that a claimed batch marked running.

        A worker marks the step runs of its whole batch running right after the claim
        (``starts.steps_started``); a first attempt given back never started.
        """
        first = jobs.filter(attempts=1, step_run__isnull=False)
        return (
            StepRun.objects.using(self.alias)
            .filter(pk__in=first.values("step_run_id"), status=RunStatus.RUNNING)
            .update(status=RunStatus.PENDING, started_at=None)
        )

    def _release(self, qs: Any) -> int:
        return int(
            qs.update(
                started_at=Case(
                    When(attempts=1, then=Value(None)), default=F("started_at")
                ),
                status=JobStatus.READY,
                lease_owner=None,
                lease_expires_at=None,
                attempts=F("attempts") - 1,
            )
        )

    def renew(self, owner_prefix: str, lease_seconds: float) -> int:
        """Extend the leases of every running job whose owner starts with the prefix.

        Rows locked right now are skipped (``SKIP LOCKED``): a child is writing their
        outcomes (and clearing their lease) in a transaction that locks several of
        them, and one multi-row ``UPDATE`` taking the same rows in another order
        would deadlock with it. A lease lasts many heartbeats, so the next one
        renews what this one skipped.
        """
        expires = timezone.now() + timedelta(seconds=lease_seconds)
        jobs = Job.objects.using(self.alias)
        with transaction.atomic(using=self.alias):
            ids = list(
                jobs.select_for_update(skip_locked=True)
                .filter(status=JobStatus.RUNNING, lease_owner__startswith=owner_prefix)
                .order_by("pk")
                .values_list("pk", flat=True)
            )
            if not ids:
                return 0
            return jobs.filter(pk__in=ids).update(lease_expires_at=expires)

    def promote_due(self, limit: int = PROMOTE_BATCH) -> int:
        """Turn up to ``limit`` scheduled jobs whose time has come into ready jobs.

        The earliest due first, in one statement. Bounded, so that jobs falling due
        together (100,000 at 09:00) never make one long transaction that holds its
        rows (and, on SQLite, the write lock) while nothing is claimed; a caller that
        gets ``limit`` back promotes again soon. Returns how many were promoted.
        """
        now = self.connection.ops.adapt_datetimefield_value(timezone.now())
        with self.connection.cursor() as cursor:
            cursor.execute(self._promote_sql(), [now, limit])
            return int(cursor.rowcount)

    def _promote_sql(self) -> str:
        """The bounded promotion; params: now, limit.

        The due rows are selected with :attr:`promote_lock` and matched with
        :attr:`promote_ids_in`, as a claim's ready rows are.
        """
        due = (
            f"SELECT id FROM {self.table} WHERE status = 'scheduled' "
            f"AND run_after <= %s ORDER BY run_after LIMIT %s {self.promote_lock}"
        )
        where = self.promote_ids_in.format(due)
        return f"UPDATE {self.table} SET status = 'ready' WHERE {where}"

    def next_due(self) -> datetime | None:
        """When the earliest scheduled job becomes due, if any."""
        value: datetime | None = (
            Job.objects.using(self.alias)
            .filter(status=JobStatus.SCHEDULED)
            .aggregate(m=Min("run_after"))["m"]
        )
        return value

    # Waiting -------------------------------------------------------------------

    def wait_for_work(self, timeout: float, wake: Sequence[int] = ()) -> bool:
        """Block up to ``timeout`` seconds or until new work may be available.

        Returns early when a descriptor in ``wake`` turns readable (the caller reads
        it). Whether the database signalled new work: never here, only where it can
        (PostgreSQL's ``NOTIFY``).
        """
        if wake:
            select.select(list(wake), [], [], max(0.0, timeout))
        elif timeout > 0:
            time.sleep(timeout)
        return False

    def close(self) -> None:
        """Release resources held for waiting (LISTEN connections)."""
