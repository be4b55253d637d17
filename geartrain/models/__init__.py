"""geartrain's models (re-exported; one module per concept)."""

from geartrain.models.job import Job, JobQuerySet, JobStatus
from geartrain.models.worker import WorkerProcess

__all__ = ["Job", "JobQuerySet", "JobStatus", "WorkerProcess"]
