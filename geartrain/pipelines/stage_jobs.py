"""Starting a stage: one ready job per pending step, inserted in one statement.

``INSERT … SELECT`` from the stage's step runs, heaviest first, with the stage's own
update riding in the same statement on PostgreSQL. Steps whose task is unique or has
its own ``run_after`` need the ORM path (:func:`start_stage_jobs` returns None).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connections

from geartrain.conf import get_settings
from geartrain.models import Job, JobStatus, RunStatus, StageRun, StepRun
from geartrain.registry import registry


def _db() -> str:
    return get_settings().DATABASE


def _connection() -> Any:
    return connections[_db()]


def _plain_backends(paths: Sequence[str]) -> dict[str, str] | None:
    """Each task's backend, or None if one needs the ORM path (unique, run_after)."""
    backends = {}
    for path in paths:
        task = registry.get(path)
        if getattr(task, "unique", False) or task.run_after is not None:
            return None
        backends[path] = task.backend
    return backends


def start_stage_jobs(stage_run_id: int, now: datetime) -> int | None:
    """Insert one ready job per pending step of a stage and mark the stage running.

    One ``INSERT … SELECT`` from the step runs (the ids, and so the claim order, follow
    ``weight DESC, step_name``); on PostgreSQL the stage run's update rides in the
    same statement (with ``prerequisites_left = 0``: a stage starts when its last
    prerequisite ends). ``steps_left`` is the number of jobs: the one absolute write of
    the counter, safe because the stage was pending, so no finisher can be counting
    it down. Returns that number, or None (and nothing is written) when a step's
    task needs what only the ORM path does (unique jobs, a task-level
    ``run_after``).
    """
    backend_sql, backend_params = _backend_case(stage_run_id)
    if backend_sql is None:
        return None
    adapt = _connection().ops.adapt_datetimefield_value
    sql = (
        f"INSERT INTO {Job._meta.db_table} (task_path, backend, queue, priority, "
        "args, kwargs, status, run_after, enqueued_at, attempts, postpones, "
        "attempt_log, step_run_id, max_attempts, timeout) "
        f"SELECT task_path, {backend_sql}, queue, priority, %s, kwargs, "
        "%s, %s, %s, 0, 0, %s, id, max_attempts, timeout "
        f"FROM {StepRun._meta.db_table} WHERE stage_run_id = %s AND status = %s "
        "ORDER BY weight DESC, step_name"
    )
    params = [
        *backend_params,
        "[]",
        JobStatus.READY,
        adapt(now),
        adapt(now),
        "[]",
        stage_run_id,
        RunStatus.PENDING,
    ]
    stages = StageRun._meta.db_table
    running = [RunStatus.RUNNING, adapt(now)]
    with _connection().cursor() as cursor:
        if _connection().vendor == "postgresql":
            cursor.execute(
                f"WITH ins AS ({sql} RETURNING 1) UPDATE {stages} SET status = %s, "
                "started_at = %s, prerequisites_left = 0, "
                "steps_left = (SELECT count(*) FROM ins) "
                "WHERE id = %s RETURNING steps_left",
                [*params, *running, stage_run_id],
            )
            return int(cursor.fetchone()[0])
        cursor.execute(sql, params)
        count = int(cursor.rowcount)
        cursor.execute(
            f"UPDATE {stages} SET status = %s, started_at = %s, "
            "prerequisites_left = 0, steps_left = %s WHERE id = %s",
            [*running, count, stage_run_id],
        )
        return count


def _backend_case(stage_run_id: int) -> tuple[str | None, list[str]]:
    """SQL for the jobs' ``backend`` column; None where the ORM path is needed."""
    # Every registered task plain and on one backend (the usual case): no need to
    # look up which tasks this stage uses.
    backends = _plain_backends(registry.paths())
    if backends is not None and len(set(backends.values())) == 1:
        return "%s", [next(iter(backends.values()))]
    steps = StepRun.objects.using(_db()).filter(
        stage_run_id=stage_run_id, status=RunStatus.PENDING
    )
    backends = _plain_backends(sorted(set(steps.values_list("task_path", flat=True))))
    if not backends:  # an empty stage inserts nothing either way
        return None, []
    whens = " ".join(["WHEN %s THEN %s"] * len(backends))
    return f"CASE task_path {whens} END", [x for pair in backends.items() for x in pair]
