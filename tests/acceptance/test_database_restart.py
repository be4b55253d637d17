"""A worker survives its database restarting (PostgreSQL, restarted for real)."""

from __future__ import annotations

import shutil
import signal
import subprocess

import pytest
from django.db import OperationalError, connection

from geartrain.models import Job, JobStatus
from tests.acceptance.workers import WorkerFactory, wait_until
from tests.testapp import tasks

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="restarts the PostgreSQL server"
)


def restart_postgresql() -> None:
    control_postgresql("restart")


def enqueue_when_up(n: int) -> list[str]:
    def attempt() -> list[str] | None:
        try:
            connection.close()
            return [tasks.add.enqueue(i, i).id for i in range(n)]
        except OperationalError:
            return None

    return wait_until(attempt, 60, "database to accept connections")


def all_succeeded(ids: list[str]) -> bool:
    try:
        connection.close()
        done = Job.objects.filter(pk__in=ids, status=JobStatus.SUCCEEDED).count()
    except OperationalError:
        return False
    return done == len(ids)


@pytest.mark.skipif(not shutil.which("pg_ctlcluster"), reason="needs pg_ctlcluster")
def test_worker_reconnects_after_a_database_restart(start_worker: WorkerFactory):
    before = enqueue_when_up(20)
    worker = start_worker("--concurrency", "2")
    wait_until(lambda: all_succeeded(before), 30, "jobs before the restart")

    restart_postgresql()
    after = enqueue_when_up(20)
    wait_until(lambda: all_succeeded(after), 90, "jobs after the restart")

    assert worker.proc.poll() is None, "the worker died with the database"
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, worker.stderr()


def control_postgresql(action: str) -> None:
    versions = subprocess.run(
        ["pg_lsclusters", "-h"], capture_output=True, text=True, check=True
    ).stdout.split()
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[0], "main", action],
        check=True,
        timeout=120,
    )


@pytest.mark.skipif(not shutil.which("pg_ctlcluster"), reason="needs pg_ctlcluster")
def test_a_stopping_worker_does_not_wait_for_a_database_that_is_down(
    start_worker: WorkerFactory,
):
    worker = start_worker("--concurrency", "1", "--shutdown-timeout", "1")
    (child,) = worker.wait_for_children(1)
    connection.close()
    control_postgresql("stop")
    try:
        child.kill()  # its jobs cannot be recovered while the database is down
        worker.signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
        logged = worker.log_text()
        assert "stops without recovering the jobs of 1 dead children" in logged
    finally:
        control_postgresql("start")
        enqueue_when_up(1)
