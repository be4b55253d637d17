"""Data between steps: a step's task reads the results of earlier stages.

Declare the task with ``takes_context=True`` and call :func:`upstream_results`::

    @task(takes_context=True)
    def load(context, table: str) -> int:
        rows = upstream_results(context)["extract"]["orders"]
        ...

Results are the JSON return values of the steps that succeeded in the other stages of
the same run; a stage only starts after the stages it depends on have finished, so
their results are always there.
"""

from __future__ import annotations

from typing import Any

from geartrain.conf import get_settings
from geartrain.models import Job, RunStatus, StepRun


def upstream_results(context: Any) -> dict[str, dict[str, Any]]:
    """``{stage name: {step name: return value}}`` of the other stages of this run.

    Raises:
        ValueError: when the running job is not a pipeline step.
    """
    db = get_settings().DATABASE
    job_id = int(context.task_result.id)
    step_run_id = (
        Job.objects.using(db).values_list("step_run_id", flat=True).get(pk=job_id)
    )
    if step_run_id is None:
        raise ValueError(
            f"Job {job_id} is not a step of a pipeline run, so it has no upstream "
            f"results. Call upstream_results() only from pipeline steps."
        )
    step = StepRun.objects.using(db).select_related("stage_run").get(pk=step_run_id)
    return results_of(step.run_id, before_stage=step.stage_run.stage_name)


def results_of(run_id: int, before_stage: str | None = None) -> dict[str, Any]:
    """Return values of succeeded steps of ``run_id``: ``{stage: {step: value}}``."""
    rows = StepRun.objects.using(get_settings().DATABASE).filter(
        run_id=run_id, status=RunStatus.SUCCEEDED
    )
    if before_stage is not None:
        rows = rows.exclude(stage_run__stage_name=before_stage)
    found: dict[str, Any] = {}
    for stage_name, step_name, value in rows.values_list(
        "stage_run__stage_name", "step_name", "return_value"
    ):
        found.setdefault(stage_name, {})[step_name] = value
    return found
