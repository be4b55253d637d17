"""geartrain in the Django admin: jobs (with retry and cancel) and workers."""

from django.contrib import admin

from geartrain.admin.jobs import JobAdmin
from geartrain.admin.workers import WorkerProcessAdmin
from geartrain.models import Job, WorkerProcess

admin.site.register(Job, JobAdmin)
admin.site.register(WorkerProcess, WorkerProcessAdmin)

__all__ = ["JobAdmin", "WorkerProcessAdmin"]
