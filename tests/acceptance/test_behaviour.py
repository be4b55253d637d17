"""Retries, postpones, timeouts, ordering and queues, run by real worker processes."""

from __future__ import annotations

import signal
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from geartrain.models import Job, JobStatus
from tests.acceptance.workers import WorkerFactory, wait_until
from tests.testapp import tasks


def run_burst(start_worker: WorkerFactory, *args: str) -> None:
    worker = start_worker("--burst", "--concurrency", "1", *args)
    assert worker.wait(timeout=120) == 0, worker.stderr()


def job(result) -> Job:
    return Job.objects.get(pk=result.id)


def test_retry_then_success_keeps_every_attempt(start_worker: WorkerFactory):
    flaky = tasks.flaky.enqueue("a", 2)
    run_burst(start_worker)
    row = job(flaky)
    assert row.status == JobStatus.SUCCEEDED
    assert row.attempts == 3
    assert [e["outcome"] for e in row.attempt_log] == ["error", "error", "succeeded"]
    assert [e["message"] for e in row.errors] == [
        "attempt 1 failed",
        "attempt 2 failed",
    ]
    assert row.errors[0]["error_class"] == "builtins.ConnectionError"
    assert "ConnectionError: attempt 1 failed" in row.errors[0]["traceback"]
    flaky.refresh()
    assert flaky.return_value == "a"
    assert len(flaky.errors) == 2
    assert flaky.attempts == 3


def test_error_not_in_retry_on_fails_at_once(start_worker: WorkerFactory):
    result = tasks.type_error.enqueue()
    run_burst(start_worker)
    row = job(result)
    assert row.status == JobStatus.FAILED
    assert row.attempts == 1
    result.refresh()
    assert result.status == "FAILED"
    assert result.errors[0].exception_class_path == "builtins.TypeError"


def test_retries_are_exhausted_then_the_job_fails(start_worker: WorkerFactory):
    result = tasks.fail.enqueue("nope")
    run_burst(start_worker)
    row = job(result)
    assert row.status == JobStatus.FAILED
    assert row.attempts == 3
    assert row.finished_at is not None


def test_postpone_does_not_count_as_a_failure(start_worker: WorkerFactory):
    result = tasks.postpone_then_succeed.enqueue(2)
    run_burst(start_worker)
    row = job(result)
    assert row.status == JobStatus.SUCCEEDED
    assert (row.attempts, row.postpones) == (1, 2)
    assert row.return_value == 2


def test_postpone_limit_fails_the_job_with_a_clear_message(start_worker: WorkerFactory):
    result = tasks.postpone_always.enqueue()
    run_burst(start_worker)
    row = job(result)
    assert row.status == JobStatus.FAILED
    assert row.postpones == 2
    assert row.errors[-1]["message"] == (
        f"Job {row.pk} of task 'tests.testapp.tasks.postpone_always' was postponed 2 "
        f"times, the limit. Raise the task's max_postpones or "
        f"GEARTRAIN['MAX_POSTPONES'] if it needs to wait longer."
    )


def test_postpones_and_retries_keep_separate_counts(start_worker: WorkerFactory):
    result = tasks.postpone_then_succeed.enqueue(1)
    flaky = tasks.flaky.enqueue("b", 1)
    run_burst(start_worker)
    assert (job(result).attempts, job(result).postpones) == (1, 1)
    assert (job(flaky).attempts, job(flaky).postpones) == (2, 0)


def test_timeout_ends_the_child_and_the_worker_goes_on(start_worker: WorkerFactory):
    slow = tasks.too_slow.enqueue()
    after = tasks.add.enqueue(1, 1)
    worker = start_worker("--concurrency", "1")
    wait_until(lambda: job(after).status == JobStatus.SUCCEEDED, 30, "next job")
    row = job(slow)
    assert row.status == JobStatus.FAILED
    assert row.errors[0]["error_class"] == "geartrain.exceptions.JobTimeout"
    assert row.errors[0]["message"].startswith(f"Job {row.pk} exceeded its timeout;")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0


def test_unknown_task_fails_and_the_worker_keeps_serving(start_worker: WorkerFactory):
    ghost = Job.objects.create(task_path="tests.testapp.tasks.gone", args=[], kwargs={})
    after = tasks.add.enqueue(2, 2)
    run_burst(start_worker)
    row = Job.objects.get(pk=ghost.pk)
    assert row.status == JobStatus.FAILED
    assert row.errors[0]["error_class"] == "geartrain.exceptions.UnknownTask"
    assert row.errors[0]["message"] == (
        "Task 'tests.testapp.tasks.gone' is not registered. Define it with @task in "
        "the 'tasks' module of an installed app, or list its module in "
        "GEARTRAIN['TASK_MODULES']."
    )
    assert job(after).return_value == 4


def test_async_task_and_context(start_worker: WorkerFactory):
    async_result = tasks.async_add.enqueue(2, 5)
    ctx = tasks.attempt_number.enqueue()
    run_burst(start_worker)
    async_result.refresh()
    ctx.refresh()
    assert async_result.return_value == 7
    assert ctx.return_value == 1


def test_non_json_return_value_fails_with_the_path(start_worker: WorkerFactory):
    result = tasks.not_json.enqueue()
    run_burst(start_worker)
    row = job(result)
    assert row.status == JobStatus.FAILED
    assert row.attempts == 1
    assert row.errors[0]["message"] == (
        "Task 'tests.testapp.tasks.not_json' returned a builtins.object at "
        "return_value['when'], which is not JSON. Return only JSON values (str, int, "
        "float, bool, None, list, or dict with str keys)."
    )


def test_priority_then_age_decides_the_order(start_worker: WorkerFactory, marks: Path):
    tasks.record.using(priority=-5).enqueue("low")
    tasks.record.enqueue("mid-1")
    tasks.record.using(priority=50).enqueue("high")
    tasks.record.enqueue("mid-2")
    run_burst(start_worker)
    assert (marks / "record").read_text().split() == ["high", "mid-1", "mid-2", "low"]


def test_run_after_is_respected(start_worker: WorkerFactory):
    when = timezone.now() + timedelta(seconds=1.5)
    delayed = tasks.add.using(run_after=when).enqueue(1, 2)
    assert job(delayed).status == JobStatus.SCHEDULED
    worker = start_worker("--concurrency", "1")
    wait_until(lambda: job(delayed).status == JobStatus.SUCCEEDED, 30, "delayed job")
    assert job(delayed).started_at >= when
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0


def test_a_worker_serves_only_its_queues(start_worker: WorkerFactory):
    email = tasks.send_email.enqueue("a@example.com")
    other = tasks.add.enqueue(1, 1)
    run_burst(start_worker, "--queues", "emails")
    assert job(email).status == JobStatus.SUCCEEDED
    assert job(other).status == JobStatus.READY


def test_worker_registers_and_unregisters(start_worker: WorkerFactory):
    from geartrain.models import WorkerProcess

    worker = start_worker("--concurrency", "2", "--queues", "default,emails")
    row = wait_until(lambda: WorkerProcess.objects.first(), 20, "registration")
    assert row.pid == worker.pid
    assert row.queues == ["default", "emails"]
    assert row.concurrency == 2
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    assert not WorkerProcess.objects.exists()


def test_an_idle_worker_stops_at_once_whatever_its_poll_interval(
    start_worker: WorkerFactory,
):
    # On PostgreSQL idle children wait on LISTEN: the supervisor's stop reaches them
    # through the wake pipe they also wait on, not after POLL_INTERVAL (60 s here;
    # SHUTDOWN_TIMEOUT is 10 s in the tests).
    worker = start_worker.start(
        "worker", "--concurrency", "2", settings={"POLL_INTERVAL": 60}
    )
    worker.wait_for_children(2)
    time.sleep(0.5)  # both children idle, waiting
    worker.signal(signal.SIGTERM)

    assert worker.wait(timeout=8) == 0


def _first_child(worker: Any) -> None:
    """Return as soon as the worker has forked a child (polled without sleeping)."""
    deadline = time.monotonic() + 30
    while not worker.children():
        assert time.monotonic() < deadline, "the worker forked no child"


@pytest.mark.parametrize(
    "args",
    [
        ("--concurrency", "4"),
        ("--concurrency", "8"),
        ("--concurrency", "2", "--with-scheduler"),
    ],
)
def test_a_stop_while_children_are_forked_reaches_every_one(
    start_worker: WorkerFactory, args: tuple[str, ...]
):
    # SIGTERM lands while the supervisor forks its children: one still running the
    # supervisor's inherited handler, or not forked yet, used to miss it and serve
    # on until SHUTDOWN_TIMEOUT (10 s in the tests) ran out and it was killed.
    worker = start_worker(*args)
    _first_child(worker)
    worker.signal(signal.SIGTERM)

    assert worker.wait(timeout=8) == 0
    assert "exited with code -9" not in worker.log_text()
