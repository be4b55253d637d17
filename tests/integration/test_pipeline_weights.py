"""Step weights learnt from the pipeline's recent finished runs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from geartrain.models import PipelineRun, RunStatus, Step, StepRun
from geartrain.pipelines import launching, weights
from tests.acceptance.pipelines import make_pipeline

pytestmark = pytest.mark.django_db(transaction=True)


def finished_run(name: str, seconds: dict[str, float], status: str = "succeeded"):
    """A run of ``name`` made final by hand, each step taking ``seconds[step]``."""
    run = launching.launch(name)
    start = timezone.now() - timedelta(hours=1)
    for step in StepRun.objects.filter(run=run):
        took = seconds.get(step.step_name)
        if took is None:
            StepRun.objects.filter(pk=step.pk).update(status=RunStatus.SKIPPED)
            continue
        StepRun.objects.filter(pk=step.pk).update(
            status=RunStatus.SUCCEEDED,
            started_at=start,
            finished_at=start + timedelta(seconds=took),
        )
    PipelineRun.objects.filter(pk=run.pk).update(
        status=status, finished_at=timezone.now()
    )
    run.refresh_from_db()
    return run


def weight(name: str) -> float:
    return float(Step.objects.get(name=name).weight)


def test_a_weight_is_the_mean_of_the_last_runs_only(settings):
    settings.GEARTRAIN = {**settings.GEARTRAIN, "WEIGHT_SAMPLE_SIZE": 3}
    make_pipeline("w", {"s": {"steps": {"a": {}, "b": {}}}})
    for took in (100.0, 2.0, 4.0):
        finished_run("w", {"a": took, "b": 7.0})
    last = finished_run("w", {"a": 6.0, "b": 7.0})

    assert weights.recompute(last) == 2
    assert (weight("a"), weight("b")) == (4.0, 7.0)  # 100 s is 4 runs ago


def test_a_step_that_did_not_run_averages_the_runs_it_has(settings):
    settings.GEARTRAIN = {**settings.GEARTRAIN, "WEIGHT_SAMPLE_SIZE": 4}
    make_pipeline("gaps", {"s": {"steps": {"a": {}, "b": {}}}})
    finished_run("gaps", {"a": 3.0, "b": 2.0})
    finished_run("gaps", {"a": 3.0})  # b skipped
    last = finished_run("gaps", {"a": 3.0, "b": 4.0})

    weights.recompute(last)
    assert (weight("a"), weight("b")) == (3.0, 3.0)


def test_unfinished_runs_and_small_moves_change_nothing():
    make_pipeline("still", {"s": {"steps": {"a": {"weight": 2.0}}}})
    finished_run("still", {"a": 2.05})  # within 5 %: not rewritten
    open_run = finished_run("still", {"a": 50.0}, status=RunStatus.RUNNING)

    assert weights.recompute(open_run) == 0
    assert weight("a") == 2.0


def test_the_new_weights_are_written_with_one_executemany():
    make_pipeline("many", {"s": {"steps": {f"x{i}": {} for i in range(30)}}})
    last = finished_run("many", {f"x{i}": 10.0 + i for i in range(30)})

    with CaptureQueriesContext(connection) as queries:
        assert weights.recompute(last) == 30
    writes = [q["sql"] for q in queries if "UPDATE" in q["sql"]]
    assert len(writes) == 1
    assert writes[0].startswith("30 times: UPDATE")
    assert [weight(f"x{i}") for i in range(30)] == [10.0 + i for i in range(30)]


def test_with_auto_weight_off_nothing_is_recomputed(settings):
    settings.GEARTRAIN = {**settings.GEARTRAIN, "AUTO_WEIGHT": False}
    make_pipeline("off", {"s": {"steps": {"a": {}}}})
    last = finished_run("off", {"a": 9.0})

    assert weights.recompute(last) == 0
    assert weight("a") == 1.0
