"""Launching pipeline runs: overlap rules, snapshot, stage and step rows, root stages.

A launch locks the pipeline row, so two concurrent launches of a "one run at a time"
pipeline cannot both pass the overlap check.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from typing import Any

from django.db import transaction

from geartrain import serialization
from geartrain.conf import configured_queues, get_settings
from geartrain.exceptions import GeartrainError
from geartrain.models import (
    OverlapRule,
    Pipeline,
    PipelineRun,
    RunStatus,
    StageRun,
    StepRun,
    Trigger,
)
from geartrain.pipelines import spec as specs
from geartrain.pipelines import spec_io
from geartrain.registry import registry

logger = logging.getLogger(__name__)

UNFINISHED = (RunStatus.PENDING, RunStatus.RUNNING)


class LaunchRefused(GeartrainError):
    """A launch was refused (overlap, failed run, disabled pipeline, unknown name)."""

    def __init__(self, message: str, *, reason: str) -> None:
        self.reason = reason
        super().__init__(message)


def _db() -> str:
    return get_settings().DATABASE


def signatures() -> dict[str, inspect.Signature]:
    """Signatures of every registered task, for step argument checks."""
    return {
        path: inspect.signature(registry.get(path).func) for path in registry.paths()
    }


def refusal(pipeline: Pipeline, trigger: str) -> LaunchRefused | None:
    """Why ``pipeline`` may not be launched now, or None."""
    if not pipeline.enabled and trigger == Trigger.SCHEDULE:
        return LaunchRefused(
            f"Pipeline {pipeline.name!r} is disabled, so its schedule does not launch "
            f"it. Enable it, or launch it by hand.",
            reason="disabled",
        )
    if pipeline.overlap != OverlapRule.FORBID:
        return None
    runs = PipelineRun.objects.using(_db()).filter(pipeline=pipeline)
    busy = runs.filter(status__in=UNFINISHED).order_by("id").first()
    if busy is not None:
        return LaunchRefused(
            f"Pipeline {pipeline.name!r} is already running (run {busy.pk}) and runs "
            f"one at a time. Wait for run {busy.pk} to finish, or cancel it.",
            reason="overlap",
        )
    latest = runs.order_by("-created_at", "-id").first()
    if latest is None or get_settings().OVERLAP_FAILED:
        return None
    if latest.status == RunStatus.FAILED and not latest.dismissed:
        return LaunchRefused(
            f"The latest run of pipeline {pipeline.name!r} (run {latest.pk}) failed. "
            f"Resume or dismiss run {latest.pk} first, or set "
            f"GEARTRAIN['OVERLAP_FAILED'] = True.",
            reason="failed",
        )
    return None


def launch(
    pipeline: Pipeline | str,
    arguments: Mapping[str, Any] | None = None,
    *,
    trigger: str = Trigger.CODE,
    launched_by: str = "",
) -> PipelineRun:
    """Start a run of ``pipeline`` with runtime ``arguments``.

    Works inside ``transaction.atomic()``: the run and its first jobs commit (or roll
    back) with the caller's writes.

    Raises:
        LaunchRefused: unknown pipeline, overlap, failed run, or disabled (schedule).
        InvalidPipeline: the definition breaks a rule (cycle, unknown task...).
        InvalidArguments: runtime arguments that are not JSON.
    """
    name = pipeline if isinstance(pipeline, str) else pipeline.name
    args, kwargs = serialization.check_arguments(
        f"pipeline {name}", (), arguments or {}
    )
    del args
    with transaction.atomic(using=_db()):
        locked = _lock_pipeline(name)
        problem = refusal(locked, trigger)
        if problem is not None:
            logger.warning(
                "Launch of pipeline %s refused reason=%s trigger=%s",
                name,
                problem.reason,
                trigger,
                extra={"action": "launch_refused", "reason": problem.reason},
            )
            raise problem
        spec = locked.to_spec()
        specs.validate(spec, signatures=signatures(), queues=configured_queues())
        run = PipelineRun.objects.using(_db()).create(
            pipeline=locked,
            pipeline_name=locked.name,
            trigger=trigger,
            launched_by=launched_by,
            arguments=kwargs,
            snapshot=spec_io.to_dict(spec),
        )
        create_rows(run, spec)
        from geartrain.pipelines import engine

        engine.start(run)
    logger.info("Pipeline %s launched run=%s trigger=%s", name, run.pk, trigger)
    return run


def _lock_pipeline(name: str) -> Pipeline:
    try:
        return Pipeline.objects.using(_db()).select_for_update().get(name=name)
    except Pipeline.DoesNotExist:
        raise LaunchRefused(
            f"No pipeline is named {name!r}. Create it in the admin or with "
            f"`geartrain sync`.",
            reason="unknown",
        ) from None


def create_rows(run: PipelineRun, spec: specs.PipelineSpec) -> None:
    """Create every stage run and step run of ``run`` from the snapshot spec."""
    sigs = signatures()
    runtime = {**dict(spec.defaults), **run.arguments}
    stage_runs = StageRun.objects.using(_db()).bulk_create(
        [
            StageRun(
                run=run,
                stage_name=stage.name,
                depends_on=list(stage.depends_on),
                prerequisites_left=len(stage.depends_on),
            )
            for stage in spec.stages
        ]
    )
    by_name = {sr.stage_name: sr for sr in stage_runs}
    step_runs = []
    for stage in spec.stages:
        for step in stage.steps:
            step_runs.append(
                StepRun(
                    stage_run=by_name[stage.name],
                    run=run,
                    step_name=step.name,
                    task_path=step.task,
                    kwargs=specs.merge_arguments(sigs[step.task], step.kwargs, runtime),
                    queue=step.queue,
                    priority=step.priority,
                    weight=step.weight,
                    critical=step.critical,
                    error_handler=step.error_handler or "",
                    max_attempts=step.max_attempts,
                    timeout=step.timeout,
                    prevent_overlap=step.prevent_overlap,
                    status=RunStatus.PENDING if step.enabled else RunStatus.SKIPPED,
                )
            )
    StepRun.objects.using(_db()).bulk_create(step_runs)


def resume(run_id: int, *, launched_by: str = "") -> PipelineRun:
    """Run again the steps of a failed or cancelled run that did not succeed.

    A new run (trigger ``resume``) starts from the old run's snapshot; succeeded steps
    and stages are copied with their results and are not run again. The old run is
    dismissed, so it no longer holds the pipeline's launches.

    Raises:
        LaunchRefused: the run is not failed or cancelled, or another run is active.
    """
    with transaction.atomic(using=_db()):
        old = PipelineRun.objects.using(_db()).select_for_update().get(pk=run_id)
        if old.status not in (RunStatus.FAILED, RunStatus.CANCELLED):
            raise LaunchRefused(
                f"Run {old.pk} of pipeline {old.pipeline_name!r} is {old.status}; only "
                f"failed or cancelled runs can be resumed.",
                reason="not_resumable",
            )
        old.dismissed = True
        old.save(update_fields=["dismissed"])
        if old.pipeline is not None:
            locked = _lock_pipeline(old.pipeline.name)
            problem = refusal(locked, Trigger.RESUME)
            if problem is not None and problem.reason == "overlap":
                raise problem
        run = PipelineRun.objects.using(_db()).create(
            pipeline=old.pipeline,
            pipeline_name=old.pipeline_name,
            trigger=Trigger.RESUME,
            launched_by=launched_by,
            arguments=old.arguments,
            snapshot=old.snapshot,
            resumed_from=old,
        )
        snapshot = spec_io.from_dict(old.snapshot)
        # Tasks may have been removed or changed since the run started.
        specs.validate(snapshot, signatures=signatures(), queues=configured_queues())
        create_rows(run, snapshot)
        _carry_over(old, run)
        from geartrain.pipelines import engine

        engine.start(run)
    return run


def _carry_over(old: PipelineRun, new: PipelineRun) -> None:
    """Copy succeeded steps and stages of ``old`` into ``new``."""
    done = {
        (s.stage_run.stage_name, s.step_name): s
        for s in old.step_runs.select_related("stage_run").filter(
            status=RunStatus.SUCCEEDED
        )
    }
    for step in new.step_runs.select_related("stage_run"):
        previous = done.get((step.stage_run.stage_name, step.step_name))
        if previous is not None:
            for field in (
                "status",
                "started_at",
                "finished_at",
                "return_value",
                "attempts",
            ):
                setattr(step, field, getattr(previous, field))
            step.save()
    succeeded = set(
        old.stage_runs.filter(
            status=RunStatus.SUCCEEDED, has_failures=False
        ).values_list("stage_name", flat=True)
    )
    stage_runs = list(new.stage_runs.all())
    for stage_run in stage_runs:
        if stage_run.stage_name in succeeded:
            stage_run.status = RunStatus.SUCCEEDED
        stage_run.prerequisites_left = len(
            [d for d in stage_run.depends_on if d not in succeeded]
        )
        stage_run.save(update_fields=["status", "prerequisites_left"])
