"""Invariant 1 and 2: no job lost, no job run twice — with real worker processes."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import pytest
from django.db import connection

from geartrain import bulk_enqueue
from geartrain.models import Job, JobStatus
from tests.acceptance.workers import WorkerFactory, assert_exit, wait_until
from tests.testapp import tasks


def marked(marks: Path, name: str = "record") -> list[str]:
    path = marks / name
    return path.read_text().split() if path.exists() else []


def status_of(job_id: str | int) -> str:
    connection.close()
    return Job.objects.get(pk=job_id).status


def test_two_workers_run_5000_jobs_exactly_once(
    start_worker: WorkerFactory, marks: Path
):
    # Both serve before the jobs exist: started after, the first to be up could run
    # them all while the second was still starting.
    first = start_worker("--concurrency", "2")
    second = start_worker("--concurrency", "2")
    first.wait_for_children(2)
    second.wait_for_children(2)
    bulk_enqueue(tasks.record, [((str(i),), {}) for i in range(5000)])
    done = Job.objects.filter(status=JobStatus.SUCCEEDED)
    wait_until(lambda: done.count() == 5000, 240, "5000 jobs to succeed")
    for worker in (first, second):
        worker.signal(signal.SIGTERM)
    assert first.wait() == 0, first.stderr()
    assert second.wait() == 0, second.stderr()

    runs = Counter(marked(marks))
    assert len(runs) == 5000
    assert set(runs.values()) == {1}
    assert Job.objects.filter(status=JobStatus.SUCCEEDED, attempts=1).count() == 5000
    # Both supervisors did part of the work.
    owners = {
        job.attempt_log[0]["worker_id"].split("/")[0]
        for job in Job.objects.only("attempt_log")
    }
    assert len(owners) == 2


def test_sigkill_of_whole_worker_mid_job_runs_the_job_again(
    start_worker: WorkerFactory, marks: Path
):
    slow = tasks.sleep_then_record.enqueue("slow", 2.0)
    worker = start_worker("--concurrency", "1")
    wait_until(lambda: marked(marks, "started"), 30, "job to start")
    worker.kill_group()
    worker.wait()

    rescuer = start_worker("--concurrency", "1")
    wait_until(lambda: status_of(slow.id) == JobStatus.SUCCEEDED, 60, "job to rerun")
    job = Job.objects.get(pk=slow.id)
    assert job.attempts == 2
    assert job.attempt_log[0]["error_class"] == "geartrain.exceptions.WorkerLost"
    assert "expired" in job.attempt_log[0]["message"]
    assert marked(marks) == ["slow"]
    rescuer.signal(signal.SIGTERM)
    assert rescuer.wait() == 0


def test_sigkill_of_a_child_is_recovered_by_its_supervisor(
    start_worker: WorkerFactory, marks: Path
):
    slow = tasks.sleep_then_record.enqueue("slow", 2.0)
    worker = start_worker("--concurrency", "1")
    (child,) = worker.wait_for_children(1)
    wait_until(lambda: marked(marks, "started"), 30, "job to start")
    child.kill()

    wait_until(lambda: status_of(slow.id) == JobStatus.SUCCEEDED, 30, "job to rerun")
    job = Job.objects.get(pk=slow.id)
    assert job.attempts == 2
    first = job.attempt_log[0]
    assert first["error_class"] == "geartrain.exceptions.WorkerLost"
    assert first["message"] == (
        f"Worker child {child.pid} exited with code -9 while running the job."
    )
    replacement = worker.wait_for_children(1)
    assert [c.pid for c in replacement] != [child.pid]
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0


def test_sigterm_lets_the_running_job_finish_and_returns_unstarted_jobs(
    start_worker: WorkerFactory, marks: Path
):
    # Fast jobs first grow the claim batch, so the slow job is claimed with others.
    bulk_enqueue(tasks.noop.using(priority=10), [((), {})] * 60)
    slow = tasks.sleep_then_record.using(priority=5).enqueue("slow", 1.5)
    bulk_enqueue(tasks.noop, [((), {})] * 60)
    worker = start_worker("--concurrency", "1")
    wait_until(lambda: marked(marks, "started"), 30, "slow job")
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, worker.stderr()

    assert status_of(slow.id) == JobStatus.SUCCEEDED
    assert marked(marks) == ["slow"]
    assert not Job.objects.filter(status=JobStatus.RUNNING).exists()
    left = Job.objects.filter(status=JobStatus.READY)
    assert left.exists()
    assert set(left.values_list("attempts", flat=True)) == {0}
    assert not left.filter(started_at__isnull=False).exists()


def test_second_signal_forces_exit_and_returns_the_running_job(
    start_worker: WorkerFactory, marks: Path
):
    slow = tasks.sleep_then_record.enqueue("slow", 30)
    worker = start_worker("--concurrency", "1", "--shutdown-timeout", "60")
    wait_until(lambda: marked(marks, "started"), 30, "slow job")
    worker.signal(signal.SIGTERM)
    worker.signal(signal.SIGINT)
    assert worker.wait(timeout=20) == 1
    job = Job.objects.get(pk=slow.id)
    assert job.status in (JobStatus.READY, JobStatus.SCHEDULED)
    assert job.attempt_log[0]["error_class"] == "geartrain.exceptions.WorkerLost"


def test_shutdown_timeout_kills_a_job_that_does_not_finish(
    start_worker: WorkerFactory, marks: Path
):
    slow = tasks.sleep_then_record.enqueue("slow", 30)
    worker = start_worker("--concurrency", "1", "--shutdown-timeout", "0.5")
    wait_until(lambda: marked(marks, "started"), 30, "slow job")
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0
    job = Job.objects.get(pk=slow.id)
    assert job.status in (JobStatus.READY, JobStatus.SCHEDULED)
    assert job.attempts == 1


def test_orphaned_children_exit_when_the_supervisor_dies(start_worker: WorkerFactory):
    worker = start_worker("--concurrency", "2")
    children = worker.wait_for_children(2)
    worker.signal(signal.SIGKILL)
    worker.wait()
    assert_exit(children, worker, 15)


@pytest.mark.parametrize("max_jobs", [5])
def test_children_are_recycled_after_max_jobs(
    start_worker: WorkerFactory, max_jobs: int
):
    bulk_enqueue(tasks.noop, [((), {})] * 20)
    worker = start_worker(
        "--burst", "--concurrency", "1", "--max-jobs-per-child", str(max_jobs)
    )
    assert worker.wait(timeout=60) == 0, worker.stderr()
    owners = Counter(
        job.attempt_log[0]["worker_id"] for job in Job.objects.only("attempt_log")
    )
    assert len(owners) == 4
    assert set(owners.values()) == {max_jobs}


def test_jobs_claimed_behind_a_slow_job_are_given_to_another_child(
    start_worker: WorkerFactory, marks: Path
):
    # Fast jobs first grow the claim batch; then a slow job is claimed with others.
    bulk_enqueue(tasks.noop.using(priority=10), [((), {})] * 80)
    slow = tasks.sleep_then_record.using(priority=5).enqueue("slow", 3.0)
    behind = bulk_enqueue(
        tasks.record.using(priority=5), [((str(i),), {}) for i in range(20)]
    )
    worker = start_worker("--concurrency", "2")
    wait_until(lambda: status_of(slow.id) == JobStatus.SUCCEEDED, 60, "slow job")
    slow_done = Job.objects.get(pk=slow.id).finished_at
    done = Job.objects.filter(pk__in=[r.id for r in behind])
    assert done.filter(status=JobStatus.SUCCEEDED).count() == 20
    # None of them waited for the slow job to end.
    assert not done.filter(finished_at__gte=slow_done).exists()
    assert set(done.values_list("attempts", flat=True)) == {1}
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
