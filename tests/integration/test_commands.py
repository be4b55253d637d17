"""``manage.py geartrain <subcommand>`` through ``call_command``; output exact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone

from geartrain import operations
from geartrain.conf import get_settings
from geartrain.models import Job, JobStatus, WorkerProcess

pytestmark = pytest.mark.django_db

ADD = "tests.testapp.tasks.add"
FAIL = "tests.testapp.tasks.fail"
EMAIL = "tests.testapp.tasks.send_email"
OLD = datetime(2020, 1, 1, 12, 0, 0, tzinfo=UTC)
HEADER = (
    "  queue                 scheduled      ready    running  succeeded     failed"
    "  cancelled"
)
DURATION_RULE = (
    "is not a duration. Write a number followed by s, m, h, d or w, such as 90s, 1h "
    "or 14d."
)


def run(*args: str) -> list[str]:
    out = StringIO()
    call_command("geartrain", *args, stdout=out)
    return out.getvalue().splitlines()


def make_job(status: str = JobStatus.READY, task_path: str = ADD, **fields: Any) -> Job:
    fields.setdefault("args", [1, 2])
    return Job.objects.create(task_path=task_path, status=status, **fields)


def finished(status: str, age: timedelta, task_path: str = ADD, **fields: Any) -> Job:
    return make_job(status, task_path, finished_at=timezone.now() - age, **fields)


# status -------------------------------------------------------------------------------


def test_status_of_an_empty_queue():
    assert run("status") == [
        "Jobs by queue and status:",
        HEADER,
        "  (no jobs)",
        "Oldest ready job: none",
        "Live workers: 0",
    ]


@override_settings(GEARTRAIN={"HEARTBEAT_INTERVAL": 10.0, "LEASE_SECONDS": 30.0})
def test_status_counts_jobs_by_queue_and_lists_live_workers():
    now = timezone.now()
    make_job(JobStatus.SCHEDULED, run_after=now + timedelta(hours=1))
    make_job(JobStatus.READY, run_after=now - timedelta(seconds=3600))
    make_job(JobStatus.READY)
    make_job(JobStatus.RUNNING, lease_owner="w-1/2", lease_expires_at=now)
    make_job(JobStatus.SUCCEEDED, finished_at=now)
    make_job(JobStatus.FAILED, EMAIL, queue="emails", finished_at=now)
    make_job(JobStatus.CANCELLED, EMAIL, queue="emails", finished_at=now)
    WorkerProcess.objects.create(
        id="w-1",
        hostname="box-1",
        pid=4242,
        queues=["default", "emails"],
        concurrency=4,
        last_heartbeat_at=now - timedelta(seconds=4.6),
    )
    WorkerProcess.objects.create(
        id="w-2",
        hostname="box-2",
        pid=7,
        queues=["reports"],
        concurrency=1,
        last_heartbeat_at=now - timedelta(seconds=11.6),
        stopping=True,
    )
    WorkerProcess.objects.create(
        id="w-dead",
        hostname="box-3",
        pid=9,
        queues=["default"],
        last_heartbeat_at=now - timedelta(hours=1),
    )

    lines = run("status")

    assert lines[:4] == [
        "Jobs by queue and status:",
        HEADER,
        "  default                       1          2          1          1          0"
        "          0",
        "  emails                        0          0          0          0          1"
        "          1",
    ]
    prefix = "Oldest ready job: waiting "
    assert lines[4].startswith(prefix)
    assert lines[4].endswith("s")
    assert 3600.0 <= float(lines[4][len(prefix) : -1]) < 3660.0
    assert lines[5] == "Live workers: 2"
    assert sorted(lines[6:]) == [
        "  w-1 host=box-1 pid=4242 concurrency=4 queues=default,emails "
        "heartbeat=5s ago",
        "  w-2 host=box-2 pid=7 concurrency=1 queues=reports heartbeat=12s ago "
        "(stopping)",
    ]


def test_status_service_reports_the_oldest_ready_job():
    oldest = timezone.now() - timedelta(minutes=30)
    make_job(JobStatus.READY, run_after=oldest)
    make_job(JobStatus.READY)
    make_job(JobStatus.SUCCEEDED, run_after=oldest - timedelta(days=1))

    snap = operations.status()

    assert snap.oldest_ready == oldest
    assert snap.counts == {"default": {"ready": 2, "succeeded": 1}}
    assert snap.workers == []


# stale --------------------------------------------------------------------------------


def _stale_fixture() -> tuple[Job, Job]:
    now = timezone.now()
    ready = make_job(JobStatus.READY, run_after=OLD - timedelta(hours=2))
    running = make_job(
        JobStatus.RUNNING,
        EMAIL,
        queue="emails",
        run_after=OLD - timedelta(hours=1),
        lease_owner="host-a/17",
        lease_expires_at=OLD,
    )
    # Not stale: a running job with a live lease, a fresh ready job, finished jobs.
    make_job(
        JobStatus.RUNNING,
        run_after=OLD,
        lease_owner="host-b/1",
        lease_expires_at=now + timedelta(minutes=5),
    )
    make_job(JobStatus.READY, run_after=now - timedelta(minutes=10))
    make_job(JobStatus.FAILED, run_after=OLD, finished_at=OLD)
    return ready, running


def test_stale_lists_expired_leases_and_old_ready_jobs():
    ready, running = _stale_fixture()

    expected = [
        "Stale jobs: 2",
        f"  {ready.pk} {ADD} queue=default ready: ready since 2020-01-01 10:00:00",
        f"  {running.pk} {EMAIL} queue=emails running: lease of host-a/17 expired "
        f"2020-01-01 12:00:00",
    ]
    assert run("stale", "--older-than", "1h") == expected
    assert run("stale") == expected


def test_stale_threshold_applies_to_ready_jobs_only():
    _ready, running = _stale_fixture()

    lines = run("stale", "--older-than", "1w")

    # The old ready job waited since 2020: still stale after a week.
    assert lines[0] == "Stale jobs: 2"
    assert run("stale", "--older-than", "20m")[0] == "Stale jobs: 2"
    assert run("stale", "--older-than", "5m")[0] == "Stale jobs: 3"
    assert str(running.pk) in lines[2]


def test_stale_with_nothing_stale():
    make_job(JobStatus.READY)
    make_job(JobStatus.SUCCEEDED, finished_at=OLD, run_after=OLD)

    assert run("stale", "--older-than", "1h") == ["No stale jobs."]


def test_stale_lists_scheduled_jobs_long_past_their_time():
    job = make_job(JobStatus.SCHEDULED, run_after=OLD)

    lines = run("stale", "--older-than", "1h")

    assert lines[0] == "Stale jobs: 1"
    assert lines[1].startswith(f"  {job.pk} {ADD} queue=default scheduled")


# retry --------------------------------------------------------------------------------


def test_retry_one_failed_job_by_id():
    old = finished(
        JobStatus.FAILED,
        timedelta(hours=1),
        EMAIL,
        args=["ann@example.com"],
        kwargs={"subject": "Invoice"},
        queue="emails",
        priority=5,
        attempts=3,
        attempt_log=[{"attempt": 1, "error_class": "builtins.ValueError"}],
    )

    lines = run("retry", str(old.pk))

    new = Job.objects.get(retried_from=old)
    assert lines == [f"Job {old.pk} retried as job {new.pk}.", "Retried 1 job(s)."]
    assert new.status == JobStatus.READY
    assert (new.task_path, new.queue, new.priority) == (EMAIL, "emails", 5)
    assert (new.args, new.kwargs) == (["ann@example.com"], {"subject": "Invoice"})
    assert (new.attempts, new.attempt_log, new.finished_at) == (0, [], None)
    assert new.run_after <= timezone.now()
    old.refresh_from_db()
    assert old.status == JobStatus.FAILED
    assert list(old.retries.all()) == [new]


def test_retry_several_ids_keeps_their_order():
    first = finished(JobStatus.SUCCEEDED, timedelta(hours=1))
    second = finished(JobStatus.CANCELLED, timedelta(hours=1))

    lines = run("retry", str(second.pk), str(first.pk))

    new_second = Job.objects.get(retried_from=second)
    new_first = Job.objects.get(retried_from=first)
    assert lines == [
        f"Job {second.pk} retried as job {new_second.pk}.",
        f"Job {first.pk} retried as job {new_first.pk}.",
        "Retried 2 job(s).",
    ]


def test_retry_failed_jobs_of_one_task():
    f1 = finished(JobStatus.FAILED, timedelta(hours=2), FAIL, args=["one"])
    finished(JobStatus.FAILED, timedelta(hours=2), ADD)
    finished(JobStatus.SUCCEEDED, timedelta(hours=2), FAIL)
    f2 = finished(JobStatus.FAILED, timedelta(hours=1), FAIL, args=["two"])

    lines = run("retry", "--failed", "--task", FAIL)

    n1 = Job.objects.get(retried_from=f1)
    n2 = Job.objects.get(retried_from=f2)
    assert sorted(lines[:2]) == sorted(
        [f"Job {f1.pk} retried as job {n1.pk}.", f"Job {f2.pk} retried as job {n2.pk}."]
    )
    assert lines[2:] == ["Retried 2 job(s)."]
    assert (n1.args, n2.args) == (["one"], ["two"])
    assert Job.objects.filter(retried_from__isnull=False).count() == 2


def test_retry_failed_jobs_of_every_task():
    finished(JobStatus.FAILED, timedelta(hours=2), FAIL)
    finished(JobStatus.FAILED, timedelta(hours=2), ADD)
    finished(JobStatus.SUCCEEDED, timedelta(hours=2), ADD)

    lines = run("retry", "--failed")

    assert lines[-1] == "Retried 2 job(s)."
    assert Job.objects.filter(retried_from__isnull=False).count() == 2


def test_retry_failed_with_no_failed_jobs():
    finished(JobStatus.SUCCEEDED, timedelta(hours=2))

    assert run("retry", "--failed") == ["Retried 0 job(s)."]
    assert Job.objects.count() == 1


def test_retry_an_unknown_id_is_an_error():
    job = finished(JobStatus.FAILED, timedelta(hours=1))

    with pytest.raises(CommandError) as info:
        run("retry", str(job.pk), "987654")

    assert str(info.value) == "No job has the id 987654."
    assert Job.objects.count() == 1


@pytest.mark.parametrize(
    "status", [JobStatus.RUNNING, JobStatus.READY, JobStatus.SCHEDULED]
)
def test_retry_an_unfinished_job_is_an_error(status):
    job = make_job(status)

    with pytest.raises(CommandError) as info:
        run("retry", str(job.pk))

    assert str(info.value) == (
        f"Job {job.pk} is {status}; only finished jobs (succeeded, failed, cancelled) "
        f"can be retried."
    )
    assert Job.objects.count() == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("retry", "1", "--failed"),
            "Give job ids or --failed (not both, not neither).",
        ),
        (("retry",), "Give job ids or --failed (not both, not neither)."),
        (("retry", "1", "--task", ADD), "--task only goes with --failed."),
        (
            ("retry", "0"),
            "Error: argument ids: '0' is not a whole number of 1 or more.",
        ),
        (
            ("retry", "abc"),
            "Error: argument ids: 'abc' is not a whole number of 1 or more.",
        ),
    ],
)
def test_retry_argument_errors(args, message):
    finished(JobStatus.FAILED, timedelta(hours=1))

    with pytest.raises(CommandError) as info:
        run(*args)

    assert str(info.value) == message
    assert Job.objects.count() == 1


# prune --------------------------------------------------------------------------------


def _prune_fixture() -> dict[str, Job]:
    age = timedelta(days=20)
    return {
        "old_succeeded": finished(JobStatus.SUCCEEDED, age),
        "old_failed": finished(JobStatus.FAILED, age),
        "old_cancelled": finished(JobStatus.CANCELLED, age),
        "recent_succeeded": finished(JobStatus.SUCCEEDED, timedelta(days=13)),
        "old_ready": make_job(JobStatus.READY, run_after=OLD, finished_at=OLD),
        "old_running": make_job(JobStatus.RUNNING, run_after=OLD, lease_owner="w/1"),
        "old_scheduled": make_job(JobStatus.SCHEDULED, run_after=OLD),
    }


def _remaining(jobs: dict[str, Job]) -> set[str]:
    alive = set(Job.objects.values_list("pk", flat=True))
    return {name for name, job in jobs.items() if job.pk in alive}


def test_prune_dry_run_counts_and_deletes_nothing():
    jobs = _prune_fixture()

    assert run("prune", "--older-than", "14d", "--dry-run") == [
        "Would delete 3 job(s)."
    ]
    assert _remaining(jobs) == set(jobs)


def test_prune_deletes_only_old_finished_jobs():
    jobs = _prune_fixture()

    assert run("prune", "--older-than", "14d") == ["Deleted 3 job(s)."]
    assert _remaining(jobs) == {
        "recent_succeeded",
        "old_ready",
        "old_running",
        "old_scheduled",
    }
    assert run("prune", "--older-than", "14d") == ["Deleted 0 job(s)."]


def test_prune_by_status():
    jobs = _prune_fixture()

    assert run("prune", "--older-than", "2w", "--status", "failed") == [
        "Deleted 1 job(s)."
    ]
    assert "old_failed" not in _remaining(jobs)
    assert run(
        "prune", "--older-than", "2w", "--status", "succeeded", "--status", "cancelled"
    ) == ["Deleted 2 job(s)."]
    assert _remaining(jobs) == {
        "recent_succeeded",
        "old_ready",
        "old_running",
        "old_scheduled",
    }


def test_prune_keeps_retried_copies_and_unlinks_them():
    old = finished(JobStatus.FAILED, timedelta(days=30))
    copy = make_job(JobStatus.READY, retried_from=old)

    assert run("prune", "--older-than", "14d") == ["Deleted 1 job(s)."]
    copy.refresh_from_db()
    assert copy.retried_from is None


def test_prune_with_an_unknown_status_is_an_error():
    with pytest.raises(CommandError) as info:
        run("prune", "--older-than", "14d", "--status", "ready")

    assert str(info.value).startswith(
        "Error: argument --status: invalid choice: 'ready' (choose from "
    )


def test_prune_service_deletes_in_batches():
    for days in range(20, 25):
        finished(JobStatus.SUCCEEDED, timedelta(days=days))
    keep = finished(JobStatus.SUCCEEDED, timedelta(days=1))
    connection = connections[get_settings().DATABASE]

    with CaptureQueriesContext(connection) as ctx:
        deleted = operations.prune(timedelta(days=14), batch_size=2)

    deletes = [
        q
        for q in ctx.captured_queries
        if q["sql"].lstrip().upper().startswith("DELETE")
    ]
    assert deleted == 5
    assert len(deletes) == 3
    assert list(Job.objects.values_list("pk", flat=True)) == [keep.pk]


def test_prune_service_dry_run_and_statuses():
    finished(JobStatus.SUCCEEDED, timedelta(days=20))
    finished(JobStatus.FAILED, timedelta(days=20))

    assert operations.prune(timedelta(days=14), dry_run=True) == 2
    assert operations.prune(timedelta(days=14), [JobStatus.FAILED]) == 1
    assert list(Job.objects.values_list("status", flat=True)) == [JobStatus.SUCCEEDED]


# nonsense on the command line ---------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("prune", "--older-than", "3x"),
            f"Error: argument --older-than: '3x' {DURATION_RULE}",
        ),
        (
            ("prune", "--older-than=-1d"),
            f"Error: argument --older-than: '-1d' {DURATION_RULE}",
        ),
        (
            ("stale", "--older-than", "1H"),
            f"Error: argument --older-than: '1H' {DURATION_RULE}",
        ),
        (
            ("stale", "--older-than", ""),
            f"Error: argument --older-than: '' {DURATION_RULE}",
        ),
        (("prune",), "Error: the following arguments are required: --older-than"),
        (
            ("worker", "--concurrency", "0"),
            "Error: argument --concurrency: '0' is not a whole number of 1 or more.",
        ),
        (
            ("worker", "--concurrency", "two"),
            "Error: argument --concurrency: 'two' is not a whole number of 1 or more.",
        ),
        (
            ("worker", "--max-jobs-per-child", "1.5"),
            "Error: argument --max-jobs-per-child: '1.5' is not a whole number of 1 or "
            "more.",
        ),
        (
            ("worker", "--shutdown-timeout=-1"),
            "Error: argument --shutdown-timeout: '-1' is not a number of seconds "
            "of 0 or more.",
        ),
        (
            ("worker", "--shutdown-timeout", "nan"),
            "Error: argument --shutdown-timeout: 'nan' is not a number of seconds "
            "of 0 or more.",
        ),
        (
            ("worker", "--queues", ","),
            "Error: argument --queues: ',' is not a comma-separated list of queue "
            "names, such as default,emails.",
        ),
        (
            ("worker", "--queues", "default,,emails"),
            "Error: argument --queues: 'default,,emails' is not a comma-separated "
            "list of queue names, such as default,emails.",
        ),
        ((), "Error: the following arguments are required: subcommand"),
    ],
)
def test_nonsense_arguments_are_command_errors(args, message):
    job = finished(JobStatus.SUCCEEDED, timedelta(days=400))

    with pytest.raises(CommandError) as info:
        run(*args)

    assert str(info.value) == message
    assert Job.objects.filter(pk=job.pk).exists()


def test_unknown_subcommand_is_a_command_error():
    with pytest.raises(CommandError) as info:
        run("explode")

    assert str(info.value).startswith(
        "Error: argument subcommand: invalid choice: 'explode' (choose from "
    )


@pytest.mark.parametrize("queues", ["nope", "emails,nope", "default,nope,other"])
def test_worker_with_an_unconfigured_queue_is_an_error(queues):
    with pytest.raises(CommandError) as info:
        run("worker", "--queues", queues, "--burst")

    assert str(info.value) == (
        "Queue 'nope' is not configured (configured: default, emails, reports). Add it "
        "to TASKS[...]['QUEUES'] or pick a configured queue."
    )
    assert not WorkerProcess.objects.exists()


@pytest.mark.parametrize(
    "args",
    [
        ("prune", "--older-than", "200000w"),
        ("stale", "--older-than", "200000w"),
        ("prune", "--older-than", "99999999999w"),
    ],
)
def test_absurd_durations_are_command_errors(args):
    with pytest.raises(CommandError, match=args[-1]):
        run(*args)
