"""Operations on pipeline runs by id, shared by commands, the admin and user code.

:func:`cancel`, :func:`resume` and :func:`dismiss` check that the run exists and is
in a state that allows the operation, and raise errors that say so otherwise.
:func:`progress` summarises a run for live displays (``geartrain launch --wait``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from geartrain.conf import get_settings
from geartrain.exceptions import GeartrainError
from geartrain.models import PipelineRun, RunStatus, StepRun
from geartrain.models.run import RUN_FINAL
from geartrain.pipelines import engine, launching


class RunNotFound(GeartrainError, LookupError):
    """No pipeline run has the given id."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        super().__init__(
            f"No pipeline run has the id {run_id}. Look up run ids in the admin, "
            f"under Pipeline runs."
        )


class WrongRunState(GeartrainError, ValueError):
    """The run's status does not allow the operation."""


def _db() -> str:
    return get_settings().DATABASE


def get_run(run_id: int, *, lock: bool = False) -> PipelineRun:
    """The run with ``run_id`` (locked when ``lock``); :class:`RunNotFound` if none."""
    runs = PipelineRun.objects.using(_db())
    if lock:
        runs = runs.select_for_update()
    try:
        return runs.get(pk=run_id)
    except PipelineRun.DoesNotExist:
        raise RunNotFound(run_id) from None


def _label(run: PipelineRun) -> str:
    return f"Run {run.pk} of pipeline {run.pipeline_name!r}"


def cancel(run_id: int) -> PipelineRun:
    """Cancel an unfinished run: waiting steps are cancelled, running ones finish.

    Returns the run, which is ``cancelled`` at once when no step was running.
    Cancelling a run whose cancel is already requested changes nothing.

    Raises:
        RunNotFound: no run has ``run_id``.
        WrongRunState: the run already finished.
    """
    with transaction.atomic(using=_db()):
        run = get_run(run_id, lock=True)
        if run.status in RUN_FINAL:
            raise WrongRunState(
                f"{_label(run)} already finished ({run.status}); only a pending or "
                f"running run can be cancelled."
            )
        return engine.cancel(run.pk)


def resume(run_id: int, *, launched_by: str = "") -> PipelineRun:
    """Start a new run that runs again the steps of ``run_id`` that did not succeed.

    Raises:
        RunNotFound: no run has ``run_id``.
        LaunchRefused: the run is not failed or cancelled, or another run is active.
    """
    get_run(run_id)
    return launching.resume(run_id, launched_by=launched_by)


def dismiss(run_id: int) -> bool:
    """Mark a failed run dismissed, so it no longer holds scheduled launches.

    Returns False when the run was already dismissed (nothing changes).

    Raises:
        RunNotFound: no run has ``run_id``.
        WrongRunState: the run is not failed.
    """
    with transaction.atomic(using=_db()):
        run = get_run(run_id, lock=True)
        if run.status != RunStatus.FAILED:
            raise WrongRunState(
                f"{_label(run)} is {run.status}, not failed; only a failed run can be "
                f"dismissed. A dismissed run no longer holds scheduled launches."
            )
        if run.dismissed:
            return False
        run.dismissed = True
        run.save(update_fields=["dismissed"])
    return True


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a run stands: step counts, weights and an estimate of the time left.

    ``left`` is ``remaining weight * elapsed / finished weight``: the weight of the
    steps not finished yet (pending or running), at the pace observed so far
    (weight finished per second of the run). Steps that ran (succeeded or failed)
    count as finished weight; skipped and cancelled ones count nowhere. ``left``
    is None until some weight finished.
    """

    status: str
    outcome: str
    total: int
    done: int
    running: int
    failed: int
    elapsed: timedelta
    left: timedelta | None

    @property
    def final(self) -> bool:
        """True once the run has its final status."""
        return self.status in RUN_FINAL


def progress(run_id: int) -> Progress:
    """The :class:`Progress` of run ``run_id`` now."""
    run = get_run(run_id)
    rows = StepRun.objects.using(_db()).filter(run_id=run.pk)
    steps = list(rows.values_list("status", "weight"))
    ran = (RunStatus.SUCCEEDED, RunStatus.FAILED)
    finished = sum(w for status, w in steps if status in ran)
    remaining = sum(
        w for status, w in steps if status in (RunStatus.PENDING, RunStatus.RUNNING)
    )
    end = run.finished_at or timezone.now()
    elapsed = end - run.started_at if run.started_at else timedelta(0)
    left = None
    if finished > 0:
        left = timedelta(seconds=remaining * elapsed.total_seconds() / finished)
    return Progress(
        status=run.status,
        outcome=run.outcome,
        total=len(steps),
        done=sum(1 for status, _ in steps if status in RUN_FINAL),
        running=sum(1 for status, _ in steps if status == RunStatus.RUNNING),
        failed=sum(1 for status, _ in steps if status == RunStatus.FAILED),
        elapsed=max(elapsed, timedelta(0)),
        left=left,
    )
