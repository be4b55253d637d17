"""Bringing fires up to date with the jobs and pipeline runs they started.

A fire is ``fired`` until its job or run reaches a final status; then it copies that
outcome and its finish time (the job's or run's own, not when a scheduler noticed).
Dependencies between schedules read these rows. A pipeline run that is resumed after
a failure makes its fire ``fired`` again.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q

from geartrain.conf import get_settings
from geartrain.models import FireStatus, JobStatus, RunStatus, ScheduleFire
from geartrain.models.job import FINISHED
from geartrain.models.run import RUN_FINAL

_JOB: dict[str, FireStatus] = {
    JobStatus.SUCCEEDED: FireStatus.SUCCEEDED,
    JobStatus.FAILED: FireStatus.FAILED,
    JobStatus.CANCELLED: FireStatus.CANCELLED,
}
_RUN: dict[str, FireStatus] = {
    RunStatus.SUCCEEDED: FireStatus.SUCCEEDED,
    RunStatus.FAILED: FireStatus.FAILED,
    RunStatus.CANCELLED: FireStatus.CANCELLED,
    RunStatus.SKIPPED: FireStatus.CANCELLED,
}


def sync(now: datetime) -> int:
    """Copy finished outcomes into open fires; the number of fires updated."""
    db = get_settings().DATABASE
    fires = ScheduleFire.objects.using(db)
    fires.filter(
        status__in=(FireStatus.FAILED, FireStatus.CANCELLED),
        pipeline_run__status__in=(RunStatus.PENDING, RunStatus.RUNNING),
    ).update(status=FireStatus.FIRED, finished_at=None)
    open_fires = fires.filter(status=FireStatus.FIRED)
    changed: list[ScheduleFire] = []
    for pk, status, finished in open_fires.filter(job__status__in=FINISHED).values_list(
        "pk", "job__status", "job__finished_at"
    ):
        changed.append(
            ScheduleFire(pk=pk, status=_JOB[status], finished_at=finished or now)
        )
    for pk, status, finished in open_fires.filter(
        pipeline_run__status__in=RUN_FINAL
    ).values_list("pk", "pipeline_run__status", "pipeline_run__finished_at"):
        changed.append(
            ScheduleFire(pk=pk, status=_RUN[status], finished_at=finished or now)
        )
    if changed:
        fires.bulk_update(changed, ["status", "finished_at"], batch_size=500)
    lost = open_fires.filter(Q(job__isnull=True) & Q(pipeline_run__isnull=True))
    return len(changed) + lost.update(
        status=FireStatus.CANCELLED,
        finished_at=now,
        reason="its job or run was deleted",
    )


def _fire(pk: int, status: str, finished_at: datetime) -> ScheduleFire:
    return ScheduleFire(pk=pk, status=status, finished_at=finished_at)
