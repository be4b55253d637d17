"""A stage started by one child's outcomes is shared with its idle siblings at once.

On PostgreSQL, NOTIFY wakes them. Elsewhere the worker's wake pipe does: without it
an idle sibling sleeps ``POLL_INTERVAL`` (5 s here) and the child that started the
stage runs it alone.
"""

from __future__ import annotations

import signal

import pytest

from geartrain.models import Job, RunStatus
from geartrain.pipelines import launching
from tests.acceptance.pipelines import make_pipeline
from tests.acceptance.test_pipelines import finished
from tests.acceptance.workers import WorkerFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_idle_siblings_join_a_stage_another_child_started(
    start_worker: WorkerFactory,
):
    make_pipeline(
        "shared",
        {
            # Long enough for the other child to have found nothing and gone idle.
            "first": {"steps": {"slow": {"kwargs": {"key": "slow", "seconds": 1.0}}}},
            "second": {
                "after": ["first"],
                "steps": {
                    f"s{i}": {"kwargs": {"key": f"s{i}", "seconds": 0.3}}
                    for i in range(6)
                },
            },
        },
    )
    run = launching.launch("shared")
    worker = start_worker.start(
        "worker", "--concurrency", "2", settings={"POLL_INTERVAL": 5}
    )
    assert finished(run, timeout=30).status == RunStatus.SUCCEEDED
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0

    second = Job.objects.filter(step_run__stage_run__stage_name="second")
    children = {job.attempt_log[0]["worker_id"] for job in second}
    assert len(children) == 2, children
