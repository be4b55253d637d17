"""Pipeline definitions: a pipeline is a DAG of stages, a stage a set of steps.

These rows are one view of a definition; :mod:`geartrain.pipelines.spec` is the other
(pipelines as code). :meth:`Pipeline.to_spec` turns the rows into a spec, which is what
validation, export and a run's snapshot use.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from geartrain.models.schedule_rules import default_time_zone
from geartrain.pipelines import spec as specs
from geartrain.scheduler import cron


class OverlapRule(models.TextChoices):
    """What a launch does while another run of the pipeline is unfinished."""

    FORBID = "forbid", _("one run at a time")
    ALLOW = "allow", _("allow overlapping runs")


class Pipeline(models.Model):
    """A named DAG of stages, with default runtime arguments and an overlap rule."""

    name = models.CharField(_("name"), max_length=200, unique=True)
    description = models.TextField(_("description"), blank=True)
    enabled = models.BooleanField(_("enabled"), default=True)
    overlap = models.CharField(
        _("overlap"),
        max_length=16,
        choices=OverlapRule.choices,
        default=OverlapRule.FORBID,
    )
    defaults = models.JSONField(
        _("default runtime arguments"), default=dict, blank=True
    )
    cron = models.CharField(
        _("cron schedule"),
        max_length=120,
        blank=True,
        help_text=_(
            "Launch on this cron expression (kept as a schedule). Blank: no schedule."
        ),
    )
    cron_timezone = models.CharField(
        _("cron time zone"), max_length=64, default=default_time_zone
    )
    synced_hash = models.CharField(
        _("definition hash at the last sync"),
        max_length=64,
        blank=True,
        editable=False,
        help_text=_("Lets `geartrain sync` tell what was changed in the admin."),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("pipeline")
        verbose_name_plural = _("pipelines")
        ordering = ("name",)
        permissions = [
            ("launch_pipeline", _("Can launch pipelines")),
            ("cancel_pipelinerun", _("Can cancel pipeline runs")),
            ("resume_pipelinerun", _("Can resume pipeline runs")),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save, and keep the schedule made from ``cron`` in step (SPEC row 4)."""
        super().save(*args, **kwargs)
        from geartrain.models.schedule import sync_pipeline_schedule

        sync_pipeline_schedule(self)

    def clean(self) -> None:
        """Refuse a bad cron expression or time zone."""
        errors: dict[str, str] = {}
        if self.cron:
            try:
                cron.CronExpression.parse(self.cron)
            except cron.InvalidCronExpression as exc:
                errors["cron"] = str(exc)
        try:
            cron.zone(self.cron_timezone)
        except cron.InvalidTimeZone as exc:
            errors["cron_timezone"] = str(exc)
        if errors:
            raise ValidationError(errors)

    def to_spec(self) -> specs.PipelineSpec:
        """This pipeline's definition as a ``PipelineSpec``."""
        stages = self.stages.prefetch_related("steps", "depends_on").order_by("name")
        return specs.PipelineSpec(
            name=self.name,
            description=self.description,
            enabled=self.enabled,
            overlap=self.overlap,
            defaults=dict(self.defaults or {}),
            cron=self.cron,
            cron_timezone=self.cron_timezone,
            stages=tuple(stage.to_spec() for stage in stages),
        )


class Stage(models.Model):
    """A set of steps run in parallel, after the stages it depends on."""

    pipeline = models.ForeignKey(
        Pipeline, on_delete=models.CASCADE, related_name="stages"
    )
    name = models.CharField(_("name"), max_length=200)
    depends_on = models.ManyToManyField(
        "self",
        symmetrical=False,
        blank=True,
        related_name="dependents",
        verbose_name=_("runs after"),
    )

    class Meta:
        verbose_name = _("stage")
        verbose_name_plural = _("stages")
        ordering = ("pipeline", "name")
        constraints = [
            models.UniqueConstraint(
                fields=["pipeline", "name"], name="geartrain_stage_name_v1"
            )
        ]

    def __str__(self) -> str:
        return f"{self.pipeline_id and self.pipeline.name} / {self.name}"

    def to_spec(self) -> specs.StageSpec:
        """This stage as a spec."""
        return specs.StageSpec(
            name=self.name,
            depends_on=tuple(sorted(s.name for s in self.depends_on.all())),
            steps=tuple(step.to_spec() for step in self.steps.all()),
        )

    def clean(self) -> None:
        """A stage may only depend on stages of its own pipeline (checked per edge)."""
        if self.pk is None:
            return
        foreign = [
            s for s in self.depends_on.all() if s.pipeline_id != self.pipeline_id
        ]
        if foreign:
            raise ValidationError(
                _(
                    "Stage %(stage)r depends on %(other)r, which is not a stage of "
                    "pipeline %(pipeline)r. Depend only on stages of the same pipeline."
                ),
                params={
                    "stage": self.name,
                    "other": foreign[0].name,
                    "pipeline": self.pipeline.name,
                },
            )


class Step(models.Model):
    """One configured call of a registered task inside a stage."""

    stage = models.ForeignKey(Stage, on_delete=models.CASCADE, related_name="steps")
    name = models.CharField(_("name"), max_length=200)
    task_path = models.CharField(_("task"), max_length=255)
    kwargs = models.JSONField(_("keyword arguments"), default=dict, blank=True)
    queue = models.CharField(_("queue"), max_length=64, default="default")
    priority = models.SmallIntegerField(_("priority"), default=0)
    weight = models.DecimalField(
        _("weight"), max_digits=12, decimal_places=5, default=Decimal("1.00000")
    )
    critical = models.BooleanField(_("critical"), default=True)
    enabled = models.BooleanField(_("enabled"), default=True)
    error_handler = models.CharField(_("error handler"), max_length=255, blank=True)
    max_attempts = models.PositiveIntegerField(_("max attempts"), null=True, blank=True)
    timeout = models.FloatField(_("timeout (seconds)"), null=True, blank=True)
    prevent_overlap = models.BooleanField(
        _("prevent overlap"),
        default=False,
        help_text=_(
            "Skip this step when the same step is still running in another run."
        ),
    )

    class Meta:
        verbose_name = _("step")
        verbose_name_plural = _("steps")
        ordering = ("stage", "-weight", "name")
        constraints = [
            models.UniqueConstraint(
                fields=["stage", "name"], name="geartrain_step_name_v1"
            ),
            models.CheckConstraint(
                condition=models.Q(priority__gte=-100, priority__lte=100),
                name="geartrain_step_priority_range_v1",
            ),
            models.CheckConstraint(
                condition=models.Q(weight__gte=0), name="geartrain_step_weight_v1"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def to_spec(self) -> specs.StepSpec:
        """This step as a spec."""
        data: dict[str, Any] = dict(self.kwargs or {})
        return specs.StepSpec(
            name=self.name,
            task=self.task_path,
            kwargs=data,
            queue=self.queue,
            priority=self.priority,
            weight=float(self.weight),
            critical=self.critical,
            enabled=self.enabled,
            error_handler=self.error_handler or None,
            max_attempts=self.max_attempts,
            timeout=self.timeout,
            prevent_overlap=self.prevent_overlap,
        )
