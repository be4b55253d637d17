"""Pipeline runs: one execution of a pipeline, its stages and its steps.

A run keeps a snapshot of the definition it started with (invariant 4): editing the
pipeline afterwards changes nothing for that run. Stage and step runs are all created at
launch; a unique constraint makes one stage run per (run, stage), and a stage starts
when its ``prerequisites_left`` counter, decremented under a row lock, reaches zero.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class RunStatus(models.TextChoices):
    """Stored status codes of pipeline, stage and step runs. Never renamed."""

    PENDING = "pending", _("pending")
    RUNNING = "running", _("running")
    SUCCEEDED = "succeeded", _("succeeded")
    FAILED = "failed", _("failed")
    CANCELLED = "cancelled", _("cancelled")
    SKIPPED = "skipped", _("skipped")
    BLOCKED = "blocked", _("blocked")


RUN_FINAL = (
    RunStatus.SUCCEEDED,
    RunStatus.FAILED,
    RunStatus.CANCELLED,
    RunStatus.SKIPPED,
)


class Trigger(models.TextChoices):
    """What started a pipeline run."""

    MANUAL = "manual", _("manual")
    SCHEDULE = "schedule", _("schedule")
    CODE = "code", _("code")
    RESUME = "resume", _("resume")


class _Timed(models.Model):
    status = models.CharField(
        _("status"), max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING
    )
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def duration(self) -> timedelta | None:
        """Finished minus started, or None while unfinished."""
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None


class PipelineRun(_Timed):
    """One execution of a pipeline."""

    pipeline = models.ForeignKey(
        "geartrain.Pipeline",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="runs",
    )
    pipeline_name = models.CharField(_("pipeline"), max_length=200)
    trigger = models.CharField(_("trigger"), max_length=16, choices=Trigger.choices)
    launched_by = models.CharField(_("launched by"), max_length=150, blank=True)
    arguments = models.JSONField(_("runtime arguments"), default=dict, blank=True)
    snapshot = models.JSONField(_("definition at launch"), default=dict)
    has_failures = models.BooleanField(_("has failures"), default=False)
    cancel_requested = models.BooleanField(_("cancel requested"), default=False)
    dismissed = models.BooleanField(
        _("dismissed"),
        default=False,
        help_text=_("A dismissed failed run no longer holds scheduled launches."),
    )
    resumed_from = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="resumed_by",
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("pipeline run")
        verbose_name_plural = _("pipeline runs")
        ordering = ("-created_at", "-id")
        indexes = [
            models.Index(
                fields=["pipeline", "status"], name="geartrain_prun_pipeline_v1"
            ),
            models.Index(
                fields=["status", "created_at"], name="geartrain_prun_status_v1"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.pipeline_name} #{self.pk} ({self.status})"

    @property
    def outcome(self) -> str:
        """The status for people: "succeeded with failures" after non-critical ones."""
        if self.status == RunStatus.SUCCEEDED and self.has_failures:
            return "succeeded with failures"
        return str(self.status)


class StageRun(_Timed):
    """One execution of a stage inside a pipeline run."""

    run = models.ForeignKey(
        PipelineRun, on_delete=models.CASCADE, related_name="stage_runs"
    )
    stage_name = models.CharField(_("stage"), max_length=200)
    depends_on = models.JSONField(_("runs after"), default=list, blank=True)
    prerequisites_left = models.PositiveIntegerField(default=0)
    steps_left = models.PositiveIntegerField(default=0)
    has_failures = models.BooleanField(_("has failures"), default=False)

    class Meta:
        verbose_name = _("stage run")
        verbose_name_plural = _("stage runs")
        ordering = ("run", "id")
        constraints = [
            models.UniqueConstraint(
                fields=["run", "stage_name"], name="geartrain_stagerun_once_v1"
            )
        ]

    def __str__(self) -> str:
        return f"{self.stage_name} ({self.status})"


class StepRun(_Timed):
    """One execution of a step; its attempts are jobs."""

    # No index of its own: the (stage_run, step_name) constraint's index leads with it.
    stage_run = models.ForeignKey(
        StageRun, on_delete=models.CASCADE, related_name="step_runs", db_index=False
    )
    run = models.ForeignKey(
        PipelineRun, on_delete=models.CASCADE, related_name="step_runs"
    )
    step_name = models.CharField(_("step"), max_length=200)
    task_path = models.CharField(_("task"), max_length=255)
    kwargs = models.JSONField(_("keyword arguments"), default=dict, blank=True)
    queue = models.CharField(_("queue"), max_length=64, default="default")
    priority = models.SmallIntegerField(_("priority"), default=0)
    weight = models.FloatField(_("weight"), default=1.0)
    critical = models.BooleanField(_("critical"), default=True)
    error_handler = models.CharField(_("error handler"), max_length=255, blank=True)
    max_attempts = models.PositiveSmallIntegerField(
        _("max attempts"), null=True, blank=True
    )
    timeout = models.FloatField(_("timeout (seconds)"), null=True, blank=True)
    prevent_overlap = models.BooleanField(_("prevent overlap"), default=False)
    return_value = models.JSONField(_("return value"), null=True, blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)

    class Meta:
        verbose_name = _("step run")
        verbose_name_plural = _("step runs")
        ordering = ("stage_run", "-weight", "step_name")
        constraints = [
            models.UniqueConstraint(
                fields=["stage_run", "step_name"], name="geartrain_steprun_once_v1"
            )
        ]
        # No index covers a column that starting or finishing a step writes (status,
        # times, outcome): on PostgreSQL those updates are then HOT (no index entry
        # written), which migration 0009 leaves room for with a fillfactor.
        indexes = [models.Index(fields=["step_name"], name="geartrain_steprun_name_v1")]

    def __str__(self) -> str:
        return f"{self.step_name} ({self.status})"


class StepError(models.Model):
    """An error recorded by the default error handler of a step."""

    step_run = models.ForeignKey(
        StepRun, on_delete=models.CASCADE, related_name="errors"
    )
    created_at = models.DateTimeField(_("time"), default=timezone.now)
    error_type = models.CharField(_("error type"), max_length=255)
    message = models.TextField(_("message"), blank=True)
    traceback = models.TextField(_("traceback"), blank=True)

    class Meta:
        verbose_name = _("step error")
        verbose_name_plural = _("step errors")
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return f"{self.error_type}: {self.message[:80]}"
