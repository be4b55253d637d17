"""geartrain's models (re-exported; one module per concept)."""

from geartrain.models.job import Job, JobQuerySet, JobStatus
from geartrain.models.pipeline import OverlapRule, Pipeline, Stage, Step
from geartrain.models.run import (
    PipelineRun,
    RunStatus,
    StageRun,
    StepError,
    StepRun,
    Trigger,
)
from geartrain.models.schedule import (
    FireKind,
    FireStatus,
    Misfire,
    OnFailure,
    Schedule,
    ScheduleDependency,
    ScheduleFire,
)
from geartrain.models.worker import WorkerProcess

__all__ = [
    "FireKind",
    "FireStatus",
    "Job",
    "JobQuerySet",
    "JobStatus",
    "Misfire",
    "OnFailure",
    "OverlapRule",
    "Pipeline",
    "PipelineRun",
    "RunStatus",
    "Schedule",
    "ScheduleDependency",
    "ScheduleFire",
    "Stage",
    "StageRun",
    "Step",
    "StepError",
    "StepRun",
    "Trigger",
    "WorkerProcess",
]
