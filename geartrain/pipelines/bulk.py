"""Set-based writes of step runs: a claimed batch's starts, a batch's outcomes, and a
stage's jobs, each in one statement (or one plan) instead of one ORM round per step.

Every transition of a step run is guarded by the status it leaves (``pending`` or
``running``), so a step is counted once however many writers race for it (a finisher,
``cancel``, a critical sibling's failure): the counts that advance stage runs come from
the rows actually changed, never from what a writer believed.

Vendor SQL stays where it pays: PostgreSQL writes a batch's outcomes with one
``UPDATE … FROM unnest(…) RETURNING``; SQLite and MariaDB/MySQL lock and read the rows,
then write them with ``executemany`` (SQLite runs in-process; MariaDB has no
``UPDATE … FROM`` with ``RETURNING``). A stage's jobs are one portable
``INSERT … SELECT`` from its step runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connections
from django.db.models import F
from django.utils import timezone

from geartrain import serialization
from geartrain.conf import get_settings
from geartrain.models import (
    Job,
    JobStatus,
    PipelineRun,
    RunStatus,
    StageRun,
    StepRun,
)

OPEN = (RunStatus.PENDING, RunStatus.RUNNING)
JOB_TO_STEP = {
    JobStatus.SUCCEEDED: RunStatus.SUCCEEDED,
    JobStatus.FAILED: RunStatus.FAILED,
    JobStatus.CANCELLED: RunStatus.CANCELLED,
}


@dataclasses.dataclass(frozen=True, slots=True)
class StepOutcome:
    """The final outcome of a step's job, to be written to its step run.

    ``started_at``: when the first attempt's task was called; it replaces the claim
    time that marked the step run running.
    """

    step_run_id: int
    status: str
    finished_at: datetime
    started_at: datetime | None
    return_value: Any
    attempts: int


@dataclasses.dataclass(frozen=True, slots=True)
class FinishedStep:
    """A step run that this transaction moved to a final status."""

    step_run_id: int
    stage_run_id: int
    run_id: int
    critical: bool
    status: str


def outcome_of(job: Job) -> StepOutcome:
    """The step outcome that ``job``'s final status means."""
    assert job.step_run_id is not None  # noqa: S101 - callers check
    finished = job.finished_at or timezone.now()
    succeeded = job.status == JobStatus.SUCCEEDED
    return StepOutcome(
        step_run_id=job.step_run_id,
        status=JOB_TO_STEP.get(JobStatus(job.status), RunStatus.FAILED),
        finished_at=finished,
        started_at=_first_start(job),
        return_value=job.return_value if succeeded else None,
        attempts=job.attempts,
    )


def _first_start(job: Job) -> datetime | None:
    """When the step's first attempt began to run (the attempt log says), if known.

    A step run is marked running when its job is claimed, with its batch; this is
    the time its task was called, which the finished step run keeps.
    """
    for entry in job.attempt_log[:1]:
        try:
            return datetime.fromisoformat(entry["started_at"])
        except (KeyError, TypeError, ValueError):
            break
    return job.started_at


def _db() -> str:
    return get_settings().DATABASE


def _connection() -> Any:
    return connections[_db()]


def has_returning() -> bool:
    # UPDATE … RETURNING: PostgreSQL, SQLite 3.35+ (the claim relies on it already);
    # MariaDB has RETURNING only for INSERT and DELETE, MySQL not at all.
    return _connection().vendor in ("postgresql", "sqlite")


@dataclasses.dataclass(frozen=True, slots=True)
class Finished:
    """What :func:`finish_steps` wrote.

    ``steps``: the step runs moved to a final status. ``counted``: the stage run
    already counted down (see :func:`count_down`) when the statement could do it
    too: on PostgreSQL, for a batch whose steps all belong to one stage and none
    failed (the usual batch); otherwise None, and the caller counts each stage down.
    ``run``: when that count reached zero, the stage's run, locked by the same
    statement (``NOWAIT``).
    """

    steps: list[FinishedStep]
    counted: StageRun | None = None
    run: PipelineRun | None = None


def finish_steps(outcomes: Sequence[StepOutcome]) -> Finished:
    """Write final outcomes to step runs still pending or running; return those.

    On PostgreSQL a run's lock that cannot be had at once (``NOWAIT``) fails the
    statement with a :class:`django.db.DatabaseError` (lock not available).
    """
    latest = {o.step_run_id: o for o in outcomes}
    if not latest:
        return Finished([])
    if _connection().vendor == "postgresql":
        return _finish_unnest(list(latest.values()))
    return Finished(_finish_each(latest))


# The columns of a run that advancing it reads (the snapshot and arguments are big
# and never needed there).
RUN_COLUMNS = tuple(
    f.attname
    for f in PipelineRun._meta.concrete_fields
    if f.attname not in ("snapshot", "arguments")
)


def _finish_unnest(outcomes: list[StepOutcome]) -> Finished:
    """PostgreSQL: one statement over arrays, with the rows it changed.

    Its second part subtracts the count from the stage run when only one stage is
    touched: one row to lock, so no lock-order question arises. If that count
    reaches zero, its third part locks the run (``NOWAIT``, after the stage row, as
    :mod:`geartrain.pipelines.engine` would with one more statement).
    """
    runs = PipelineRun._meta.db_table
    run_cols = ", ".join(f"r.{name}" for name in RUN_COLUMNS)
    steps, stages = StepRun._meta.db_table, StageRun._meta.db_table
    sql = (
        f"WITH s AS (UPDATE {steps} AS s SET status = v.status, finished_at = v.f, "
        "started_at = COALESCE(v.st, s.started_at, v.f), return_value = v.r, "
        "attempts = v.a "
        "FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[], "
        "%s::timestamptz[], %s::jsonb[], %s::integer[]) AS v(id, status, f, st, r, a) "
        "WHERE s.id = v.id AND s.status IN (%s, %s) "
        "RETURNING s.id, s.stage_run_id, s.run_id, s.critical, s.status), "
        "one AS (SELECT min(stage_run_id) AS id, count(*) AS n FROM s "
        "HAVING count(DISTINCT stage_run_id) = 1 AND bool_and(status <> %s)), "
        f"c AS (UPDATE {stages} AS t SET steps_left = t.steps_left - one.n "
        "FROM one WHERE t.id = one.id "
        "RETURNING t.id, t.run_id, t.stage_name, t.status, t.steps_left), "
        f"r AS (SELECT * FROM {runs} WHERE id IN "
        "(SELECT run_id FROM c WHERE steps_left <= 0) FOR UPDATE NOWAIT) "
        "SELECT s.id, s.stage_run_id, s.run_id, s.critical, s.status, "
        f"c.id, c.run_id, c.stage_name, c.status, c.steps_left, {run_cols} "
        "FROM s LEFT JOIN c ON c.id = s.stage_run_id LEFT JOIN r ON r.id = c.run_id"
    )
    params = [
        [o.step_run_id for o in outcomes],
        [o.status for o in outcomes],
        [o.finished_at for o in outcomes],
        [o.started_at for o in outcomes],
        [_json_text(o.return_value) for o in outcomes],
        [o.attempts for o in outcomes],
        *OPEN,
        RunStatus.FAILED,
    ]
    with _connection().cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    counted = next((_stage_run(r[5], r[6:10]) for r in rows if r[5] is not None), None)
    run = next(
        (PipelineRun.from_db(_db(), RUN_COLUMNS, r[10:]) for r in rows if r[10]), None
    )
    finished = [
        FinishedStep(int(r[0]), int(r[1]), int(r[2]), bool(r[3]), r[4]) for r in rows
    ]
    return Finished(finished, counted, run)


def _json_text(value: Any) -> str | None:
    # None is SQL NULL, as the ORM writes it to a nullable JSONField.
    return None if value is None else serialization.dumps(value)


def _finish_each(latest: dict[int, StepOutcome]) -> list[FinishedStep]:
    """SQLite, MariaDB/MySQL: lock and read the open rows, then one executemany."""
    rows = list(
        StepRun.objects.using(_db())
        .select_for_update()
        .filter(pk__in=list(latest), status__in=OPEN)
        .order_by("pk")
        .values_list("pk", "stage_run_id", "run_id", "critical")
    )
    if not rows:
        return []
    conn = _connection()
    adapt = conn.ops.adapt_datetimefield_value
    field = StepRun._meta.get_field("return_value")
    table = StepRun._meta.db_table
    sql = (
        f"UPDATE {table} SET status = %s, finished_at = %s, "
        "started_at = COALESCE(%s, started_at, %s), return_value = %s, attempts = %s "
        "WHERE id = %s AND status IN (%s, %s)"
    )
    params = []
    for pk, *_ in rows:
        o = latest[pk]
        value = o.return_value
        prepared = None if value is None else field.get_db_prep_value(value, conn)
        started = None if o.started_at is None else adapt(o.started_at)
        params.append(
            (
                o.status,
                adapt(o.finished_at),
                started,
                adapt(o.finished_at),
                prepared,
                o.attempts,
                pk,
                *OPEN,
            )
        )
    with conn.cursor() as cursor:
        cursor.executemany(sql, params)
    return [
        FinishedStep(pk, stage, run, critical, latest[pk].status)
        for pk, stage, run, critical in rows
    ]


def count_down(stage_run_id: int, finished: int, **fields: Any) -> StageRun:
    """Subtract ``finished`` from a stage run's ``steps_left``; return the stage run.

    An atomic ``steps_left = steps_left - n``: finishers that do not hold the run's
    lock change the counter concurrently, so no writer may set it from a value it read.
    The row stays locked until the transaction ends, so exactly one transaction sees
    the counter reach zero. The stage run returned carries ``run_id``, ``stage_name``,
    ``status`` and ``steps_left`` (what completing it needs).
    """
    table = StageRun._meta.db_table
    if not fields and has_returning():
        with _connection().cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET steps_left = steps_left - %s WHERE id = %s "
                "RETURNING run_id, stage_name, status, steps_left",
                [finished, stage_run_id],
            )
            row = cursor.fetchone()
    else:
        stages = StageRun.objects.using(_db()).filter(pk=stage_run_id)
        stages.update(steps_left=F("steps_left") - finished, **fields)
        row = stages.values_list("run_id", "stage_name", "status", "steps_left").get()
    return _stage_run(stage_run_id, row)


def _stage_run(stage_run_id: int, row: Sequence[Any]) -> StageRun:
    """A stage run from ``(run_id, stage_name, status, steps_left)``."""
    known = dict(
        zip(("run_id", "stage_name", "status", "steps_left"), row, strict=True)
    )
    known["id"] = stage_run_id
    # from_db() takes the values in the model's field order.
    names = [f.attname for f in StageRun._meta.concrete_fields if f.attname in known]
    return StageRun.from_db(_db(), names, [known[name] for name in names])
