"""Steps with ``prevent_overlap``: is the same step running in another run now?"""

from __future__ import annotations

from geartrain.conf import get_settings
from geartrain.models import PipelineRun, RunStatus, StageRun, StepRun


def _db() -> str:
    return get_settings().DATABASE


def running_elsewhere(step: StepRun) -> bool:
    """Whether the same step of the same pipeline runs in another run now."""
    run = PipelineRun.objects.using(_db()).only("pipeline_id").get(pk=step.run_id)
    if run.pipeline_id is None:
        return False
    stage_name = (
        StageRun.objects.using(_db())
        .values_list("stage_name", flat=True)
        .get(pk=step.stage_run_id)
    )
    return (
        StepRun.objects.using(_db())
        .filter(
            run__pipeline_id=run.pipeline_id,
            stage_run__stage_name=stage_name,
            step_name=step.step_name,
            status=RunStatus.RUNNING,
        )
        .exclude(run_id=step.run_id)
        .exists()
    )
