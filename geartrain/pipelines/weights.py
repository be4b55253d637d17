"""Step weights learnt from history: the mean duration of a step's recent runs.

Runs after a pipeline run finishes, in a savepoint: a failure here is logged and never
keeps the run from its final status (invariant 5). Steps with no finished history keep
their weight, and so do steps whose mean moved by 1 ms or 5 % or less.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from decimal import Decimal

from django.db import DatabaseError, transaction
from django.db.models import F, Window
from django.db.models.functions import RowNumber

from geartrain.conf import get_settings
from geartrain.models import PipelineRun, Step, StepRun

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
    Step.objects.using(db).bulk_update(changed, ["weight"])
    return len(changed)


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
    rows = (
        StepRun.objects.using(get_settings().DATABASE)
        .filter(
            run__pipeline_id=pipeline_id,
            started_at__isnull=False,
            finished_at__isnull=False,
        )
        .annotate(
            recent=Window(
                RowNumber(),
                partition_by=[F("stage_run__stage_name"), F("step_name")],
                order_by=F("finished_at").desc(),
            )
        )
        .filter(recent__lte=sample)
        .values_list("stage_run__stage_name", "step_name", "started_at", "finished_at")
    )
    found: dict[tuple[str, str], list[float]] = defaultdict(list)
    for stage_name, step_name, started, finished in rows:
        if started is not None and finished is not None:
            seconds = (finished - started).total_seconds()
            found[(stage_name, step_name)].append(seconds)
    return found
