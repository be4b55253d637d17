"""geartrain in the Django admin: jobs (with retry and cancel), workers, pipelines,
schedules."""

from django.contrib import admin

from geartrain.admin.jobs import JobAdmin
from geartrain.admin.pipelines import PipelineAdmin
from geartrain.admin.runs import PipelineRunAdmin, StepErrorAdmin
from geartrain.admin.schedule_related import ScheduleFireAdmin
from geartrain.admin.schedules import ScheduleAdmin
from geartrain.admin.workers import WorkerProcessAdmin
from geartrain.models import (
    Job,
    Pipeline,
    PipelineRun,
    Schedule,
    ScheduleFire,
    StepError,
    WorkerProcess,
)

admin.site.register(Job, JobAdmin)
admin.site.register(WorkerProcess, WorkerProcessAdmin)
admin.site.register(Pipeline, PipelineAdmin)
admin.site.register(PipelineRun, PipelineRunAdmin)
admin.site.register(StepError, StepErrorAdmin)
admin.site.register(Schedule, ScheduleAdmin)
admin.site.register(ScheduleFire, ScheduleFireAdmin)

__all__ = [
    "JobAdmin",
    "PipelineAdmin",
    "PipelineRunAdmin",
    "ScheduleAdmin",
    "ScheduleFireAdmin",
    "StepErrorAdmin",
    "WorkerProcessAdmin",
]
