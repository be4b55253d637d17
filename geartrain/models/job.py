"""The job: one enqueued execution of a task, and its stored result."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class JobStatus(models.TextChoices):
    """Stored status codes of a job. Never renamed."""

    SCHEDULED = "scheduled", _("scheduled")
    READY = "ready", _("ready")
    RUNNING = "running", _("running")
    SUCCEEDED = "succeeded", _("succeeded")
    FAILED = "failed", _("failed")
    CANCELLED = "cancelled", _("cancelled")


WAITING = (JobStatus.SCHEDULED, JobStatus.READY)
FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class JobQuerySet(models.QuerySet["Job"]):
    """Query helpers used by the commands and the admin."""

    def waiting(self) -> JobQuerySet:
        """Jobs that have not started: scheduled or ready."""
        return self.filter(status__in=WAITING)

    def finished(self) -> JobQuerySet:
        """Jobs in a final status."""
        return self.filter(status__in=FINISHED)

    def lease_expired(self, now: datetime) -> JobQuerySet:
        """Running jobs whose worker stopped renewing the lease."""
        return self.filter(status=JobStatus.RUNNING, lease_expires_at__lt=now)

    def stale(self, older_than: timedelta, now: datetime | None = None) -> JobQuerySet:
        """Running jobs with an expired lease, or ready jobs nobody picked up."""
        now = now or timezone.now()
        cutoff = now - older_than
        return self.filter(
            Q(status=JobStatus.RUNNING, lease_expires_at__lt=now)
            | Q(status__in=WAITING, run_after__lt=cutoff)
        )


class Job(models.Model):
    """One enqueued execution of a registered task.

    ``attempt_log`` keeps one entry per attempt: ``{"attempt", "worker_id",
    "started_at", "finished_at", "outcome", "error_class", "message", "traceback"}``.
    """

    id = models.BigAutoField(primary_key=True)
    task_path = models.CharField(_("task"), max_length=255)
    backend = models.CharField(_("backend"), max_length=64, default="default")
    queue = models.CharField(_("queue"), max_length=64, default="default")
    priority = models.SmallIntegerField(_("priority"), default=0)
    args = models.JSONField(_("positional arguments"), default=list)
    kwargs = models.JSONField(_("keyword arguments"), default=dict)
    status = models.CharField(
        _("status"), max_length=16, choices=JobStatus.choices, default=JobStatus.READY
    )
    run_after = models.DateTimeField(_("run after"), default=timezone.now)
    enqueued_at = models.DateTimeField(_("enqueued at"), default=timezone.now)
    started_at = models.DateTimeField(_("first started at"), null=True, blank=True)
    last_attempted_at = models.DateTimeField(
        _("last attempted at"), null=True, blank=True
    )
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    postpones = models.PositiveIntegerField(_("postpones"), default=0)
    attempt_log = models.JSONField(_("attempt log"), default=list, blank=True)
    return_value = models.JSONField(_("return value"), null=True, blank=True)
    # NULL, not "", marks "no key": NULLs never collide in a unique index.
    unique_key = models.CharField(
        _("unique key"),
        max_length=64,
        null=True,
        blank=True,
        unique=True,
        help_text=_("Set while a unique job waits; cleared when it starts."),
    )
    lease_owner = models.CharField(  # noqa: DJ001 - NULL means "not leased"
        _("leased by"), max_length=80, null=True, blank=True
    )
    lease_expires_at = models.DateTimeField(
        _("lease expires at"), null=True, blank=True
    )
    retried_from = models.ForeignKey(
        "self",
        verbose_name=_("retried from"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="retries",
    )

    max_attempts = models.PositiveSmallIntegerField(
        _("max attempts"),
        null=True,
        blank=True,
        help_text=_("Overrides the task's max_attempts for this job (pipeline steps)."),
    )
    timeout = models.FloatField(
        _("timeout (seconds)"),
        null=True,
        blank=True,
        help_text=_("Overrides the task's timeout for this job (pipeline steps)."),
    )
    step_run = models.ForeignKey(
        "geartrain.StepRun",
        verbose_name=_("pipeline step run"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
    )

    objects = JobQuerySet.as_manager()

    class Meta:
        verbose_name = _("job")
        verbose_name_plural = _("jobs")
        ordering = ("-id",)
        indexes = [
            # The claim query: status = ready, queue IN (...), ORDER BY priority DESC,
            # run_after, id.
            models.Index(
                fields=["status", "queue", "-priority", "run_after", "id"],
                name="geartrain_job_claim_v1",
            ),
            # Promotion of due scheduled jobs and the stale query on ready jobs.
            models.Index(fields=["status", "run_after"], name="geartrain_job_due_v1"),
            # The reaper and the stale query on running jobs.
            models.Index(
                fields=["status", "lease_expires_at"], name="geartrain_job_lease_v1"
            ),
            # Pruning finished jobs by age.
            models.Index(
                fields=["status", "finished_at"], name="geartrain_job_prune_v1"
            ),
            models.Index(fields=["task_path", "status"], name="geartrain_job_task_v1"),
            # The admin's date hierarchy and "newest first" views.
            models.Index(fields=["enqueued_at"], name="geartrain_job_enqueued_v1"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(priority__gte=-100, priority__lte=100),
                name="geartrain_job_priority_range_v1",
            ),
        ]
        permissions = [
            ("retry_job", _("Can retry jobs")),
            ("cancel_job", _("Can cancel jobs")),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.task_path} ({self.status})"

    @property
    def is_finished(self) -> bool:
        """Whether the job is in a final status."""
        return self.status in FINISHED

    @property
    def errors(self) -> list[dict[str, Any]]:
        """Attempt-log entries that ended with an error."""
        return [e for e in self.attempt_log if e.get("error_class")]

    @property
    def worker_ids(self) -> list[str]:
        """Worker ids of all recorded attempts, oldest first."""
        return [str(e.get("worker_id", "")) for e in self.attempt_log]
