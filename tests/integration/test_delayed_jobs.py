"""Delayed jobs (``run_after`` in the future) on a real database, without workers.

A delayed job is stored as one ``scheduled`` row; a worker's poll promotes it to
``ready`` once due and claims it like any other job. Real worker processes are in
``tests/acceptance/test_delayed_jobs.py``.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from geartrain import bulk_enqueue, compat, operations
from geartrain.conf import get_settings
from geartrain.models import Job, JobStatus
from geartrain.queue import PROMOTE_BATCH, get_strategy
from geartrain.worker.child import Child
from tests.testapp import tasks

pytestmark = pytest.mark.django_db

Status = compat.TaskResultStatus
ADD = "tests.testapp.tasks.add"
EMAIL = "tests.testapp.tasks.send_email"
OLD = datetime(2020, 1, 1, 12, 0, 0, tzinfo=UTC)
HUNDRED_YEARS = "36500d"
ALL_QUEUES = ["default", "emails", "reports"]


def run(*args: str) -> list[str]:
    out = StringIO()
    call_command("geartrain", *args, stdout=out)
    return out.getvalue().splitlines()


def claim(queues: list[str], limit: int = 100) -> list[Job]:
    """One idle poll of a worker child: promote due jobs, then claim."""
    strategy = get_strategy("default")
    strategy.promote_due()
    return strategy.claim(queues, limit, "host-test/1", 30)


def wait_past(when: datetime) -> None:
    """Let the clock pass ``when`` (a fraction of a second in these tests)."""
    while timezone.now() <= when:
        time.sleep(0.01)


def stored(result: compat.AnyTaskResult) -> Job:
    return Job.objects.get(pk=int(result.id))


# Row 93: stored as scheduled, a result handle with the same id ----------------------


def test_a_future_run_after_stores_a_scheduled_row_and_returns_its_handle():
    when = timezone.now() + timedelta(hours=2)

    result = tasks.add.using(run_after=when).enqueue(1, 2)

    job = stored(result)
    assert (job.status, job.run_after, job.attempts) == (JobStatus.SCHEDULED, when, 0)
    assert job.started_at is None
    assert job.enqueued_at < when
    assert result.id == str(job.pk)
    assert result.status == Status.READY
    assert result.task.run_after == when
    fetched = tasks.add.get_result(result.id)
    assert (fetched.id, fetched.status, fetched.args) == (
        result.id,
        Status.READY,
        [1, 2],
    )
    assert fetched.task.run_after == when
    assert fetched.started_at is None


def test_bulk_enqueue_stores_scheduled_rows_whose_ids_get_result_reads():
    when = timezone.now() + timedelta(days=3)

    results = bulk_enqueue(
        tasks.add.using(run_after=when), [((i, 1), {}) for i in range(5)]
    )

    jobs = {j.pk: j for j in Job.objects.all()}
    assert sorted(jobs) == sorted(int(r.id) for r in results)
    assert {(j.status, j.run_after) for j in jobs.values()} == {
        (JobStatus.SCHEDULED, when)
    }
    for i, result in enumerate(results):
        fetched = tasks.add.get_result(result.id)
        assert (fetched.args, fetched.status, fetched.task.run_after) == (
            [i, 1],
            Status.READY,
            when,
        )


def test_nothing_claims_a_job_before_its_run_after():
    later = tasks.add.using(run_after=timezone.now() + timedelta(hours=1)).enqueue(1, 1)

    assert get_strategy("default").promote_due() == 0
    assert claim(ALL_QUEUES) == []
    soon_at = timezone.now() + timedelta(milliseconds=200)
    soon = tasks.add.using(run_after=soon_at).enqueue(2, 2)
    wait_past(soon_at)
    claimed = claim(ALL_QUEUES)

    assert [str(j.pk) for j in claimed] == [soon.id]
    assert claimed[0].started_at >= soon_at
    job = stored(later)
    assert (job.status, job.attempts, job.started_at) == (JobStatus.SCHEDULED, 0, None)


@pytest.mark.django_db(transaction=True)
def test_a_burst_worker_child_runs_due_jobs_and_leaves_future_ones():
    future = tasks.add.using(run_after=timezone.now() + timedelta(days=1)).enqueue(1, 1)
    due_at = timezone.now() + timedelta(milliseconds=100)
    due = tasks.add.using(run_after=due_at).enqueue(2, 3)
    wait_past(due_at)

    _run_burst_child()

    done = stored(due)
    assert (done.status, done.return_value, done.attempts) == (
        JobStatus.SUCCEEDED,
        5,
        1,
    )
    assert done.started_at is not None
    assert done.started_at >= done.run_after == due_at
    waiting = stored(future)
    assert (waiting.status, waiting.attempts, waiting.started_at) == (
        JobStatus.SCHEDULED,
        0,
        None,
    )
    assert tasks.add.get_result(due.id).return_value == 5


@contextlib.contextmanager
def in_process_child(*, burst: bool = False) -> Iterator[Child]:
    """A worker child of this process; the signal handlers it sets are put back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    child = Child(
        worker_id="test-worker",
        queues=ALL_QUEUES,
        slot=[0.0, 0.0],
        conf=get_settings(),
        burst=burst,
    )
    try:
        yield child
    finally:
        child.prefetch.close()
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _run_burst_child() -> None:
    with in_process_child(burst=True) as child:
        assert child.run() == 0


# Row 97: queue and priority survive the wait ----------------------------------------


def test_a_due_delayed_job_keeps_its_queue_and_priority():
    when = timezone.now() + timedelta(milliseconds=200)
    low = tasks.send_email.using(run_after=when, priority=-5).enqueue("low@x")
    high = tasks.send_email.using(run_after=when, priority=50).enqueue("high@x")
    usual = tasks.send_email.using(run_after=when).enqueue("usual@x")
    other = tasks.add.using(run_after=when, queue_name="reports").enqueue(1, 1)
    wait_past(when)

    assert claim(["default"]) == []
    fetched = tasks.send_email.get_result(high.id)
    assert (fetched.task.queue_name, fetched.task.priority) == ("emails", 50)
    assert fetched.task.run_after == when
    claimed = claim(["emails"])

    assert [str(j.pk) for j in claimed] == [high.id, usual.id, low.id]
    assert [(j.queue, j.priority) for j in claimed] == [
        ("emails", 50),
        ("emails", 5),
        ("emails", -5),
    ]
    assert stored(other).attempts == 0
    assert [str(j.pk) for j in claim(["reports"])] == [other.id]


# Row 98: stale scheduled jobs --------------------------------------------------------


def _stale_scheduled_fixture() -> tuple[Job, Job]:
    now = timezone.now()
    old = Job.objects.create(
        task_path=ADD, status=JobStatus.SCHEDULED, run_after=OLD, enqueued_at=OLD
    )
    recent = Job.objects.create(
        task_path=EMAIL,
        queue="emails",
        priority=5,
        status=JobStatus.SCHEDULED,
        run_after=now - timedelta(minutes=10),
        enqueued_at=now - timedelta(hours=1),
    )
    # Not stale scheduled: a future job, an old ready job, an expired lease, a
    # finished job that once was delayed.
    Job.objects.create(
        task_path=ADD, status=JobStatus.SCHEDULED, run_after=now + timedelta(hours=1)
    )
    Job.objects.create(task_path=ADD, status=JobStatus.READY, run_after=OLD)
    Job.objects.create(
        task_path=ADD,
        status=JobStatus.RUNNING,
        run_after=OLD,
        lease_owner="host-a/17",
        lease_expires_at=OLD,
    )
    Job.objects.create(
        task_path=ADD, status=JobStatus.SUCCEEDED, run_after=OLD, finished_at=OLD
    )
    return old, recent


def test_stale_scheduled_lists_scheduled_jobs_due_longer_ago_than_given():
    old, recent = _stale_scheduled_fixture()

    assert operations.stale_scheduled(timedelta(minutes=5)) == [old, recent]
    assert operations.stale_scheduled(timedelta(hours=1)) == [old]
    assert run("stale", "--scheduled", "--older-than", "5m") == [
        "Stale scheduled jobs: 2",
        f"  {old.pk} {ADD} queue=default scheduled: due since 2020-01-01 12:00:00",
        f"  {recent.pk} {EMAIL} queue=emails scheduled: due since "
        f"{recent.run_after:%Y-%m-%d %H:%M:%S}",
    ]
    assert run("stale", "--scheduled") == [
        "Stale scheduled jobs: 1",
        f"  {old.pk} {ADD} queue=default scheduled: due since 2020-01-01 12:00:00",
    ]


def test_stale_scheduled_with_a_hundred_year_age_lists_none():
    _stale_scheduled_fixture()

    assert operations.stale_scheduled(timedelta(days=36500)) == []
    assert run("stale", "--scheduled", "--older-than", HUNDRED_YEARS) == [
        "No stale scheduled jobs."
    ]


def test_stale_scheduled_with_no_scheduled_jobs():
    Job.objects.create(task_path=ADD, status=JobStatus.READY, run_after=OLD)

    assert run("stale", "--scheduled", "--older-than", "1s") == [
        "No stale scheduled jobs."
    ]


def test_plain_stale_lists_old_scheduled_jobs_as_due_since():
    old, _recent = _stale_scheduled_fixture()

    lines = run("stale", "--older-than", "1h")

    assert lines[0] == "Stale jobs: 3"
    assert (
        f"  {old.pk} {ADD} queue=default scheduled: due since 2020-01-01 12:00:00"
        in (lines)
    )


def test_stale_scheduled_with_a_bad_duration_is_a_command_error():
    with pytest.raises(CommandError) as info:
        run("stale", "--scheduled", "--older-than", "3x")

    assert str(info.value) == (
        "Error: argument --older-than: '3x' is not a duration. Write a number "
        "followed by s, m, h, d or w, such as 90s, 1h or 14d."
    )


def test_a_child_promotes_a_large_backlog_a_batch_per_cycle():
    later = timezone.now() + timedelta(hours=1)
    bulk_enqueue(tasks.noop.using(run_after=later), [((), {})] * (PROMOTE_BATCH + 200))
    Job.objects.update(run_after=OLD)  # all due at once
    with in_process_child() as child:
        child._cycle()  # one bounded promotion, then a claim
        scheduled = Job.objects.filter(status=JobStatus.SCHEDULED)
        assert scheduled.count() == 200
        assert child.next_promote <= time.monotonic()  # more may be due: at once
        child._cycle()
        assert scheduled.count() == 0
        assert child.next_promote > time.monotonic()  # caught up: back to polling
