"""Schedules: cron + time zone + misfire policy, aimed at a pipeline or a task.

A schedule's configuration is edited by people (admin, code); its bookkeeping
(``next_slot``, ``due_at``, ``last_slot``...) is written by the scheduler with
``UPDATE`` statements that never touch the configuration columns, so bookkeeping writes
are not "changes" (no spurious reloads, no NOTIFY). ``due_at`` is when a scheduler must
look at the schedule next: the next slot, a later re-check while a dependency holds the
slot, or NULL when disabled or ended. Schedulers find work with an index on it.

Each fired slot is a :class:`ScheduleFire` row, unique per (schedule, slot), so any
number of schedulers fire each slot once (invariant 2). "Run now" fires have no slot.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from django.db import models
from django.utils import timezone as djtz
from django.utils.translation import gettext_lazy as _

from geartrain.models.schedule_rules import (
    check_dependency,
    check_schedule,
    default_time_zone,
)
from geartrain.scheduler import cron
from geartrain.scheduler.cron import CronExpression
from geartrain.scheduler.misfire import CATCH_UP, COALESCE, SKIP

if TYPE_CHECKING:
    from geartrain.models.pipeline import Pipeline


class Misfire(models.TextChoices):
    """What happens to slots missed while no scheduler was running."""

    CATCH_UP = CATCH_UP, _("catch up: run each missed slot, in order")
    COALESCE = COALESCE, _("coalesce: one run for the latest missed slot")
    SKIP = SKIP, _("skip: drop slots later than the grace period")


class Schedule(models.Model):
    """When to launch a pipeline, or enqueue a task, by cron in a time zone."""

    CONFIG_FIELDS: ClassVar[tuple[str, ...]] = (
        "name",
        "description",
        "cron",
        "timezone",
        "enabled",
        "cron_base",
        "end_at",
        "pipeline",
        "task_path",
        "args",
        "kwargs",
        "queue",
        "priority",
        "misfire",
        "grace_seconds",
        "catch_up_limit",
        "skip_if_running",
    )

    name = models.CharField(_("name"), max_length=200, unique=True)
    description = models.TextField(_("description"), blank=True)
    cron = models.CharField(
        _("cron expression"),
        max_length=120,
        help_text=_("Five fields (minute hour day month weekday) or @daily, @hourly…"),
    )
    timezone = models.CharField(
        _("time zone"), max_length=64, default=default_time_zone
    )
    enabled = models.BooleanField(_("enabled"), default=True)
    cron_base = models.DateTimeField(
        _("start"),
        null=True,
        blank=True,
        help_text=_(
            "The first slot is the first cron instant after this (blank: now)."
        ),
    )
    end_at = models.DateTimeField(_("end"), null=True, blank=True)
    pipeline = models.ForeignKey(
        "geartrain.Pipeline",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="schedules",
    )
    task_path = models.CharField(_("task"), max_length=255, blank=True)
    args = models.JSONField(_("positional arguments"), default=list, blank=True)
    kwargs = models.JSONField(
        _("keyword arguments"),
        default=dict,
        blank=True,
        help_text=_("A task's keyword arguments, or a pipeline's runtime arguments."),
    )
    queue = models.CharField(_("queue"), max_length=64, default="default")
    priority = models.SmallIntegerField(_("priority"), default=0)
    misfire = models.CharField(
        _("misfire policy"),
        max_length=16,
        choices=Misfire.choices,
        default=Misfire.CATCH_UP,
    )
    grace_seconds = models.PositiveIntegerField(
        _("grace period (seconds)"), null=True, blank=True
    )
    catch_up_limit = models.PositiveIntegerField(
        _("catch-up limit"),
        null=True,
        blank=True,
        help_text=_("Most missed slots caught up at once (blank: CATCH_UP_LIMIT)."),
    )
    skip_if_running = models.BooleanField(
        _("skip while running"),
        default=False,
        help_text=_("Task targets: skip a slot while the previous job is unfinished."),
    )
    from_pipeline = models.BooleanField(
        _("from the pipeline's cron"), default=False, editable=False
    )
    changed_at = models.DateTimeField(_("changed at"), default=djtz.now)
    # Bookkeeping, written by the scheduler only.
    next_slot = models.DateTimeField(_("next slot"), null=True, editable=False)
    due_at = models.DateTimeField(_("due at"), null=True, editable=False)
    last_slot = models.DateTimeField(_("last slot fired"), null=True, editable=False)
    last_fired_at = models.DateTimeField(_("last fired at"), null=True, editable=False)
    total_runs = models.PositiveBigIntegerField(_("runs"), default=0, editable=False)
    held_reason = models.CharField(
        _("held because"), max_length=500, blank=True, editable=False
    )

    class Meta:
        verbose_name = _("schedule")
        verbose_name_plural = _("schedules")
        ordering = ("name",)
        indexes = [models.Index(fields=["due_at"], name="geartrain_schedule_due_v1")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(priority__gte=-100, priority__lte=100),
                name="geartrain_schedule_priority_range_v1",
            ),
        ]
        permissions = [("run_schedule", _("Can run schedules now"))]

    _loaded: dict[str, Any] | None = None

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save, recomputing the next slot when the timing changed.

        An existing row saves its configuration only, never the scheduler's counters.
        """
        now = djtz.now()
        if self.cron_base is None:
            self.cron_base = now
        timing = self._timing_changed()
        if timing:
            self.reschedule(now, from_base=self._loaded is None or self._base_moved())
        self.changed_at = now
        if self._loaded is not None:
            given = kwargs.get("update_fields")
            fields = set(self.CONFIG_FIELDS if given is None else given)
            fields.add("changed_at")
            if timing:
                fields.update(("next_slot", "due_at", "held_reason"))
            kwargs["update_fields"] = sorted(fields)
        super().save(*args, **kwargs)
        self._loaded = {
            name: getattr(self, name)
            for name in ("cron", "timezone", "enabled", "cron_base", "end_at")
        }

    @classmethod
    def from_db(cls, db: str | None, field_names: Any, values: Any, **kw: Any) -> Any:
        instance = super().from_db(db, field_names, values, **kw)
        instance._loaded = {
            name: getattr(instance, name)
            for name in ("cron", "timezone", "enabled", "cron_base", "end_at")
            if name in field_names
        }
        return instance

    @property
    def target_label(self) -> str:
        """ "pipeline NAME" or "task PATH"."""
        if self.pipeline is not None:
            return f"pipeline {self.pipeline.name}"
        return f"task {self.task_path}"

    def expression(self) -> CronExpression:
        """The parsed cron expression."""
        return cron.CronExpression.parse(self.cron)

    def zone(self) -> Any:
        """The schedule's ``ZoneInfo``."""
        return cron.zone(self.timezone)

    def clean(self) -> None:
        """Refuse bad expressions, zones, targets and policy combinations."""
        check_schedule(self)

    def _timing_changed(self) -> bool:
        if self._loaded is None:
            return True
        return any(getattr(self, k) != v for k, v in self._loaded.items())

    def _base_moved(self) -> bool:
        return self._loaded is not None and self._loaded["cron_base"] != self.cron_base

    def reschedule(self, now: datetime, *, from_base: bool = False) -> None:
        """Compute ``next_slot`` and ``due_at`` after an edit (not saved).

        From ``cron_base`` for a new schedule or a moved start (so missed slots since
        then follow the misfire policy); from now otherwise (an edit or an enable never
        fires the past). A slot already fired is never planned again.
        """
        self.held_reason = ""
        if not self.enabled:
            self.next_slot = self.due_at = None
            return
        base = self.cron_base or now
        after = base if from_base else max(base, now)
        if self.last_slot is not None:
            after = max(after, self.last_slot)
        slot = cron.next_fire(self.expression(), after, self.zone())
        if self.end_at is not None and slot > self.end_at:
            self.next_slot = self.due_at = None
            return
        self.next_slot = self.due_at = slot


class FireKind(models.TextChoices):
    """Why a fire happened."""

    CRON = "cron", _("cron slot")
    MANUAL = "manual", _("run now")
    BACKFILL = "backfill", _("backfill")


class FireStatus(models.TextChoices):
    """Stored status codes of a fire. Never renamed."""

    FIRED = "fired", _("fired")
    SUCCEEDED = "succeeded", _("succeeded")
    FAILED = "failed", _("failed")
    CANCELLED = "cancelled", _("cancelled")
    SKIPPED = "skipped", _("skipped")


FIRE_FINISHED = (FireStatus.SUCCEEDED, FireStatus.FAILED, FireStatus.CANCELLED)


class ScheduleFire(models.Model):
    """One slot of a schedule: fired (a job or a pipeline run) or skipped, and why."""

    schedule = models.ForeignKey(
        Schedule, on_delete=models.CASCADE, related_name="fires"
    )
    slot = models.DateTimeField(_("slot"), null=True, blank=True)
    kind = models.CharField(
        _("kind"), max_length=16, choices=FireKind.choices, default=FireKind.CRON
    )
    status = models.CharField(_("status"), max_length=16, choices=FireStatus.choices)
    reason = models.CharField(_("reason"), max_length=500, blank=True)
    fired_at = models.DateTimeField(_("fired at"), default=djtz.now)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    launched_by = models.CharField(_("launched by"), max_length=150, blank=True)
    job = models.ForeignKey(
        "geartrain.Job",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    pipeline_run = models.ForeignKey(
        "geartrain.PipelineRun",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        verbose_name = _("schedule fire")
        verbose_name_plural = _("schedule fires")
        ordering = ("-fired_at", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=["schedule", "slot"], name="geartrain_fire_once_v1"
            )
        ]
        indexes = [
            models.Index(fields=["status"], name="geartrain_fire_status_v1"),
            models.Index(
                fields=["schedule", "finished_at"], name="geartrain_fire_finished_v1"
            ),
        ]

    def __str__(self) -> str:
        when = self.slot.isoformat() if self.slot else "run now"
        return f"{self.schedule_id}@{when} {self.status}"

    @property
    def duration(self) -> timedelta | None:
        """Finished minus fired, or None while unfinished."""
        return self.finished_at - self.fired_at if self.finished_at else None


class OnFailure(models.TextChoices):
    """What a depender does when its dependee's latest run failed."""

    WAIT = "wait", _("wait for a successful run")
    RUN = "run", _("run anyway")
    SKIP = "skip", _("skip the slot")


class ScheduleDependency(models.Model):
    """``depender`` waits for a successful run of ``dependee`` after its own start."""

    depender = models.ForeignKey(
        Schedule, on_delete=models.CASCADE, related_name="dependencies"
    )
    dependee = models.ForeignKey(
        Schedule, on_delete=models.CASCADE, related_name="dependents"
    )
    future = models.BooleanField(
        _("future only"),
        default=False,
        help_text=_("Ignore it for the depender's first run after this edit."),
    )
    on_failure = models.CharField(
        _("when it failed"),
        max_length=8,
        choices=OnFailure.choices,
        default=OnFailure.WAIT,
    )
    changed_at = models.DateTimeField(_("changed at"), default=djtz.now)

    class Meta:
        verbose_name = _("schedule dependency")
        verbose_name_plural = _("schedule dependencies")
        constraints = [
            models.UniqueConstraint(
                fields=["depender", "dependee"], name="geartrain_dependency_pair_v1"
            )
        ]

    def __str__(self) -> str:
        arrow = "--D+" if self.future else "--D"
        return f"{self.depender} {arrow} {self.dependee}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.changed_at = djtz.now()
        super().save(*args, **kwargs)

    def clean(self) -> None:
        """Refuse a non-future self-dependency and any cycle."""
        check_dependency(self)


def sync_pipeline_schedule(pipeline: Pipeline) -> None:
    """Create, update or delete the schedule made from ``pipeline.cron``.

    Its name is ``"<pipeline> (pipeline cron)"``; it is enabled when the pipeline is.
    Deleting the pipeline deletes it (cascade, bulk deletes included).
    """
    using = pipeline._state.db or "default"
    rows = Schedule.objects.using(using).filter(pipeline=pipeline, from_pipeline=True)
    schedule = rows.first()
    if not pipeline.cron:
        if schedule is not None:
            schedule.delete(using=using)
        return
    if schedule is None:
        schedule = Schedule(pipeline=pipeline, from_pipeline=True)
    schedule.name = f"{pipeline.name} (pipeline cron)"
    schedule.description = f"Made from the cron field of pipeline {pipeline.name!r}."
    schedule.cron = pipeline.cron
    schedule.timezone = pipeline.cron_timezone
    schedule.enabled = pipeline.enabled
    schedule.save(using=using)
