"""Concurrent finishers: each stage run starts exactly once (invariant 2)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from django.db import connection

from geartrain.models import PipelineRun, RunStatus, StageRun
from geartrain.pipelines import launching
from tests.acceptance.pipelines import make_pipeline
from tests.acceptance.workers import WorkerFactory, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

RUNS = 30 if connection.vendor == "postgresql" else 8


def test_fan_in_stage_starts_once_per_run_under_concurrent_finishers(
    start_worker: WorkerFactory, marks: Path
):
    wide = {f"s{i}": {"kwargs": {"key": "x"}} for i in range(6)}
    make_pipeline(
        "fan-in",
        {
            "left": {"steps": dict(wide)},
            "right": {"steps": dict(wide)},
            "join": {
                "after": ["left", "right"],
                "steps": {"join": {"kwargs": {"key": "join"}}},
            },
        },
        overlap="allow",
    )
    runs = [launching.launch("fan-in") for _ in range(RUNS)]
    workers = [start_worker("--concurrency", "2") for _ in range(2)]

    def all_done() -> bool:
        return not PipelineRun.objects.filter(
            status__in=[RunStatus.PENDING, RunStatus.RUNNING]
        ).exists()

    wait_until(all_done, 240, "all runs to finish")
    assert set(PipelineRun.objects.values_list("status", flat=True)) == {
        RunStatus.SUCCEEDED
    }
    # One join per run, never two; one stage run per (run, stage).
    assert Counter((marks / "record").read_text().split())["join"] == RUNS
    per_stage = Counter(StageRun.objects.values_list("run_id", "stage_name"))
    assert set(per_stage.values()) == {1}
    for run in runs:
        join = run.stage_runs.get(stage_name="join")
        assert join.step_runs.get().attempts == 1
    for worker in workers:
        worker.kill_group()
