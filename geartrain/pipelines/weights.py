"""Step weights learnt from history: the mean duration of a step's recent runs.

Runs after a pipeline run finishes, in a savepoint: a failure here is logged and never
keeps the run from its final status (invariant 5). Steps with no finished history keep
their weight, and so do steps whose mean moved by 1 ms or 5 % or less.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from decimal import Decimal

from django.db import DatabaseError, connections, transaction

from geartrain.conf import get_settings
from geartrain.models import PipelineRun, Step, StepRun
from geartrain.models.run import RUN_FINAL

logger = logging.getLogger(__name__)

PLACES = Decimal("0.00001")
MIN_CHANGE = Decimal("0.001")  # seconds
MIN_SHARE = Decimal("0.05")


def recompute(run: PipelineRun) -> int:
    """Update the weights of ``run``'s pipeline; returns the number of steps changed."""
    conf = get_settings()
    if not conf.AUTO_WEIGHT or run.pipeline_id is None:
        return 0
    try:
        with transaction.atomic(using=conf.DATABASE):
            return _recompute(run.pipeline_id, conf.WEIGHT_SAMPLE_SIZE)
    except (DatabaseError, ArithmeticError, ValueError):
        logger.exception("Weights of pipeline %s were not updated", run.pipeline_name)
        return 0


def _recompute(pipeline_id: int, sample: int) -> int:
    durations = _recent_durations(pipeline_id, sample)
    changed = []
    db = get_settings().DATABASE
    steps = Step.objects.using(db).filter(stage__pipeline_id=pipeline_id)
    for step in steps.select_related("stage"):
        seconds = durations.get((step.stage.name, step.name))
        if not seconds:
            continue
        weight = (Decimal(sum(seconds)) / len(seconds)).quantize(PLACES)
        if _moved(step.weight, weight):
            step.weight = weight
            changed.append(step)
    _write(db, changed)
    return len(changed)


def _write(db: str, steps: list[Step]) -> None:
    """One ``UPDATE`` per step, sent as one ``executemany``.

    ``bulk_update`` builds a ``CASE`` with a branch per step, which costs about
    0.3 ms of Python per step: 0.3 s of CPU after each run of a 1,000-step pipeline.
    """
    if not steps:
        return
    conn = connections[db]
    field = Step._meta.get_field("weight")
    table = conn.ops.quote_name(Step._meta.db_table)
    params = [(field.get_db_prep_save(s.weight, conn), s.pk) for s in steps]
    with conn.cursor() as cursor:
        cursor.executemany(f"UPDATE {table} SET weight = %s WHERE id = %s", params)


def _moved(old: Decimal | float, new: Decimal) -> bool:
    """Whether a weight moved enough to be rewritten (it only orders a stage's steps).

    Durations jitter on every run: rewriting every step's weight after each run would
    cost a pipeline of short steps more than its steps, for no change in their order.
    """
    old = Decimal(old)
    return abs(new - old) > max(MIN_CHANGE, old * MIN_SHARE)


def _recent_durations(
    pipeline_id: int, sample: int
) -> dict[tuple[str, str], list[float]]:
    """Durations of each step in the pipeline's last ``sample`` finished runs.

    Bounded by those runs, so the cost does not grow with the pipeline's history. A
    step that did not run in some of them (skipped, disabled, added since) averages
    the runs it has.
    """
    db = get_settings().DATABASE
    recent = (
        PipelineRun.objects.using(db)
        .filter(pipeline_id=pipeline_id, status__in=RUN_FINAL)
        .order_by("-pk")
        .values_list("pk", flat=True)[:sample]
    )
    rows = (
        StepRun.objects.using(db)
        .filter(
            run_id__in=list(recent),
            started_at__isnull=False,
            finished_at__isnull=False,
        )
        .values_list("stage_run__stage_name", "step_name", "started_at", "finished_at")
    )
    found: dict[tuple[str, str], list[float]] = defaultdict(list)
    for stage_name, step_name, started, finished in rows:
        if started is not None and finished is not None:
            seconds = (finished - started).total_seconds()
            found[(stage_name, step_name)].append(seconds)
    return found
