"""Django Tasks conformance of geartrain's ``DatabaseBackend`` on a real database.

Everything here goes through Django's public Tasks API (``task.enqueue``,
``task.get_result``, ``TaskResult.refresh`` and their async twins) plus
``geartrain.bulk_enqueue``; the rows it leaves are read back through the ``Job`` model.
"""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import Group
from django.db import connections, transaction
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone

from geartrain import bulk_enqueue, compat, operations
from geartrain.backends import DatabaseBackend
from geartrain.conf import get_settings
from geartrain.exceptions import UnknownTask
from geartrain.models import Job, JobStatus
from geartrain.queue import get_strategy
from geartrain.worker.child import Child
from tests.testapp import tasks

Status = compat.TaskResultStatus
IMMEDIATE = f"{compat.TASKS_MODULE}.backends.immediate.ImmediateBackend"
WITH_IMMEDIATE = {
    "default": {
        "BACKEND": "geartrain.backends.DatabaseBackend",
        "QUEUES": ["default", "emails", "reports"],
    },
    "immediate": {"BACKEND": IMMEDIATE},
}

pytestmark = pytest.mark.django_db

# Typed as Any: some tests pass arguments the task annotations do not allow.
record: Any = tasks.record
add: Any = tasks.add


def _db() -> Any:
    return connections[get_settings().DATABASE]


class _Recorder:
    """Collects ``(signal name, sender, result id, status)`` of the Tasks signals."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any, str, str]] = []
        self._receivers: list[tuple[Any, Any]] = []

    def __enter__(self) -> _Recorder:
        for name in ("task_enqueued", "task_started", "task_finished"):
            sig = getattr(compat, name)

            def receiver(
                sender: Any, task_result: Any, _n: str = name, **kw: Any
            ) -> None:
                self.events.append((_n, sender, task_result.id, task_result.status))

            sig.connect(receiver, weak=False)
            self._receivers.append((sig, receiver))
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, receiver in self._receivers:
            sig.disconnect(receiver)

    def of(self, name: str) -> list[tuple[str, Any, str, str]]:
        return [e for e in self.events if e[0] == name]


def _run_worker_child_in_process() -> None:
    """Run one real worker child loop in this process until no work is left."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        child = Child(
            worker_id="test-worker",
            queues=["default", "emails", "reports"],
            slot=[0.0, 0.0],
            conf=get_settings(),
            burst=True,
        )
        assert child.run() == 0
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


# Capabilities -------------------------------------------------------------------------


def test_backend_is_geartrain_and_declares_every_capability():
    backend = tasks.add.get_backend()
    assert isinstance(backend, DatabaseBackend)
    assert backend.supports_defer is True
    assert backend.supports_priority is True
    assert backend.supports_get_result is True
    assert backend.supports_async_task is True
    assert backend.alias == "default"
    assert backend.queues == {"default", "emails", "reports"}


# enqueue ------------------------------------------------------------------------------


def test_enqueue_returns_a_ready_result_with_a_string_id():
    result = tasks.add.enqueue(2, 3)

    assert result.status == Status.READY
    assert isinstance(result.id, str)
    assert result.id == str(Job.objects.get().pk)
    assert result.task is tasks.add
    assert result.backend == "default"
    assert result.args == [2, 3]
    assert result.kwargs == {}
    assert result.errors == []
    assert result.worker_ids == []
    assert result.attempts == 0
    assert result.started_at is None
    assert result.finished_at is None
    assert result.last_attempted_at is None
    assert result.enqueued_at is not None
    assert timezone.is_aware(result.enqueued_at)
    assert result.is_finished is False
    with pytest.raises(ValueError, match=r"^Task has not finished yet$"):
        _ = result.return_value


def test_enqueue_stores_one_ready_job_with_the_call():
    before = timezone.now()
    result = tasks.send_email.enqueue("ann@example.com", subject="Invoice")
    after = timezone.now()

    job = Job.objects.get(pk=int(result.id))
    assert job.task_path == "tests.testapp.tasks.send_email"
    assert job.backend == "default"
    assert job.queue == "emails"
    assert job.priority == 5
    assert job.args == ["ann@example.com"]
    assert job.kwargs == {"subject": "Invoice"}
    assert job.status == JobStatus.READY
    assert before <= job.enqueued_at <= after
    assert before <= job.run_after <= after
    assert job.attempts == 0
    assert job.postpones == 0
    assert job.attempt_log == []
    assert job.return_value is None
    assert job.unique_key is None
    assert job.lease_owner is None
    assert job.retried_from is None


def test_enqueue_normalises_tuples_to_lists_in_result_and_row():
    result = record.enqueue(key={"pair": (1, (2, 3)), "items": ({"a": (4,)},)})

    expected = {"pair": [1, [2, 3]], "items": [{"a": [4]}]}
    assert result.kwargs == {"key": expected}
    assert Job.objects.get().kwargs == {"key": expected}
    args_result = tasks.add.enqueue(*(1, 2))
    assert args_result.args == [1, 2]


def test_each_enqueue_creates_its_own_job():
    first = tasks.add.enqueue(1, 1)
    second = tasks.add.enqueue(1, 1)

    assert first.id != second.id
    assert Job.objects.count() == 2


def test_using_priority_and_queue_are_stored_on_the_job():
    result = tasks.add.using(priority=-7, queue_name="reports").enqueue(1, 2)

    job = Job.objects.get(pk=int(result.id))
    assert (job.priority, job.queue) == (-7, "reports")
    assert result.task.priority == -7
    assert result.task.queue_name == "reports"


@pytest.mark.parametrize("priority", [-100, 100, 0])
def test_priority_bounds_are_accepted(priority):
    result = tasks.add.using(priority=priority).enqueue(1, 2)

    assert Job.objects.get(pk=int(result.id)).priority == priority


def test_run_after_in_the_future_makes_a_scheduled_job():
    when = timezone.now() + timedelta(hours=2)
    result = tasks.add.using(run_after=when).enqueue(1, 2)

    job = Job.objects.get(pk=int(result.id))
    assert job.status == JobStatus.SCHEDULED
    assert job.run_after == when
    # Django has no "scheduled": a job waiting for its time reads as READY.
    assert result.status == Status.READY
    assert tasks.add.get_result(result.id).status == Status.READY


def test_run_after_in_the_past_makes_a_ready_job():
    when = timezone.now() - timedelta(minutes=5)
    result = tasks.add.using(run_after=when).enqueue(1, 2)

    job = Job.objects.get(pk=int(result.id))
    assert job.status == JobStatus.READY
    assert job.run_after == when


def test_run_after_in_another_time_zone_is_stored_as_the_same_instant():
    local = datetime(2999, 1, 2, 3, 4, 5, tzinfo=ZoneInfo("America/New_York"))
    result = tasks.add.using(run_after=local).enqueue(1, 2)

    job = Job.objects.get(pk=int(result.id))
    assert job.run_after == datetime(2999, 1, 2, 8, 4, 5, tzinfo=UTC)
    assert job.status == JobStatus.SCHEDULED


def test_async_task_function_is_accepted():
    result = tasks.async_add.enqueue(1, 2)

    assert (
        Job.objects.get(pk=int(result.id)).task_path == "tests.testapp.tasks.async_add"
    )


# Transactions -------------------------------------------------------------------------


def _count_from_another_connection() -> int:
    """Count jobs on a fresh connection in another thread (sees committed rows only)."""
    counts: list[int] = []

    def count() -> None:
        try:
            counts.append(Job.objects.count())
        finally:
            connections.close_all()

    thread = threading.Thread(target=count)
    thread.start()
    thread.join(timeout=60)
    assert len(counts) == 1
    return counts[0]


@pytest.mark.django_db(transaction=True)
def test_enqueue_commits_together_with_the_callers_writes():
    with transaction.atomic():
        Group.objects.create(name="billing")
        result = tasks.add.enqueue(1, 2)
        bulk = bulk_enqueue(tasks.add, [((3, 4), {})])
        invisible_before_commit = _count_from_another_connection()

    assert invisible_before_commit == 0
    assert _count_from_another_connection() == 2
    assert Group.objects.filter(name="billing").exists()
    assert tasks.add.get_result(result.id).status == Status.READY
    assert tasks.add.get_result(bulk[0].id).args == [3, 4]


@pytest.mark.django_db(transaction=True)
def test_enqueue_rolls_back_together_with_the_callers_writes():
    class Abort(Exception):
        pass

    def work() -> str:
        with transaction.atomic():
            Group.objects.create(name="billing")
            result = tasks.add.enqueue(1, 2)
            bulk_enqueue(tasks.add, [((3, 4), {}), ((5, 6), {})])
            enqueued.append(result.id)
            raise Abort

    enqueued: list[str] = []
    with pytest.raises(Abort):
        work()
    result_id = enqueued[0]

    assert Job.objects.count() == 0
    assert not Group.objects.exists()
    with pytest.raises(compat.TaskResultDoesNotExist):
        tasks.add.get_result(result_id)


@pytest.mark.django_db(transaction=True)
def test_enqueue_in_a_rolled_back_savepoint_keeps_the_outer_work():
    with transaction.atomic():
        kept = tasks.add.enqueue(1, 1)
        try:
            with transaction.atomic():
                Group.objects.create(name="inner")
                tasks.add.enqueue(2, 2)
                raise RuntimeError("inner failure")
        except RuntimeError:
            pass
        Group.objects.create(name="outer")

    assert list(Job.objects.values_list("pk", flat=True)) == [int(kept.id)]
    assert list(Group.objects.values_list("name", flat=True)) == ["outer"]


# get_result / refresh -----------------------------------------------------------------


def test_get_result_reads_the_job_back():
    enqueued = tasks.send_email.enqueue("bob@example.com")

    fetched = tasks.send_email.get_result(enqueued.id)

    assert fetched.id == enqueued.id
    assert fetched.status == Status.READY
    assert fetched.args == ["bob@example.com"]
    assert fetched.kwargs == {}
    assert fetched.backend == "default"
    assert fetched.enqueued_at == enqueued.enqueued_at
    assert fetched.task.func is tasks.send_email.func
    assert fetched.errors == []
    assert fetched.worker_ids == []


def test_backend_get_result_reads_any_task():
    enqueued = tasks.add.enqueue(4, 5)

    fetched = tasks.noop.get_backend().get_result(enqueued.id)

    assert fetched.task.func is tasks.add.func


def test_get_result_of_an_unknown_id_raises_does_not_exist():
    with pytest.raises(compat.TaskResultDoesNotExist) as info:
        tasks.add.get_result("987654321")
    assert str(info.value) == "No job has the id '987654321'."


@pytest.mark.parametrize(
    "bad_id", ["not-a-number", "", "1.5", "99999999999999999999999", "-1"]
)
def test_get_result_of_a_malformed_id_raises_does_not_exist(bad_id):
    tasks.add.enqueue(1, 2)

    with pytest.raises(compat.TaskResultDoesNotExist) as info:
        tasks.add.get_result(bad_id)
    assert str(info.value) == f"No job has the id {bad_id!r}."


def test_get_result_of_another_tasks_job_raises_mismatch():
    other = tasks.send_email.enqueue("x@example.com")

    with pytest.raises(compat.TaskResultMismatch) as info:
        tasks.add.get_result(other.id)
    assert str(info.value) == (
        "Task does not match (received 'tests.testapp.tasks.send_email')"
    )


def test_get_result_of_a_job_whose_task_is_not_registered_names_the_task():
    job = Job.objects.create(task_path="gone.tasks.renamed", args=[], kwargs={})

    with pytest.raises(UnknownTask) as info:
        tasks.add.get_backend().get_result(str(job.pk))
    assert str(info.value) == (
        "Task 'gone.tasks.renamed' is not registered. Define it with @task in the "
        "'tasks' module of an installed app, or list its module in "
        "GEARTRAIN['TASK_MODULES']."
    )


def test_get_result_task_carries_the_jobs_priority_queue_and_run_after():
    when = timezone.now() + timedelta(hours=1)
    enqueued = tasks.add.using(
        priority=9, queue_name="reports", run_after=when
    ).enqueue(1, 2)

    fetched = tasks.add.get_result(enqueued.id)

    assert fetched.task.priority == 9
    assert fetched.task.queue_name == "reports"
    assert fetched.task.run_after == when


def test_status_mapping_of_every_job_status():
    expected = {
        JobStatus.SCHEDULED: Status.READY,
        JobStatus.READY: Status.READY,
        JobStatus.RUNNING: Status.RUNNING,
        JobStatus.SUCCEEDED: Status.SUCCESSFUL,
        JobStatus.FAILED: Status.FAILED,
        JobStatus.CANCELLED: Status.FAILED,
    }
    for job_status, django_status in expected.items():
        job = Job.objects.create(
            task_path="tests.testapp.tasks.add", args=[1, 2], status=job_status
        )
        assert tasks.add.get_result(str(job.pk)).status == django_status, job_status


def test_refresh_follows_a_claim_and_shows_the_running_worker():
    result = tasks.add.enqueue(1, 2)
    strategy = get_strategy(get_settings().DATABASE)

    claimed = strategy.claim(["default"], 10, "host-1/42", 30.0)
    assert [j.pk for j in claimed] == [int(result.id)]
    result.refresh()

    assert result.status == Status.RUNNING
    assert result.worker_ids == ["host-1/42"]
    assert result.started_at is not None
    assert result.last_attempted_at is not None
    assert result.finished_at is None


def test_refresh_of_a_cancelled_job_reads_failed():
    result = tasks.add.enqueue(1, 2)

    assert operations.cancel_jobs(Job.objects.filter(pk=int(result.id))) == 1
    result.refresh()

    assert result.status == Status.FAILED
    assert result.finished_at is not None
    assert result.is_finished is True
    with pytest.raises(ValueError, match=r"^Task failed$"):
        _ = result.return_value


def test_refresh_reads_a_stored_success_and_its_attempt_log():
    result = tasks.add.enqueue(1, 2)
    now = timezone.now()
    Job.objects.filter(pk=int(result.id)).update(
        status=JobStatus.SUCCEEDED,
        return_value=3,
        attempts=1,
        started_at=now,
        last_attempted_at=now,
        finished_at=now,
        attempt_log=[
            {
                "attempt": 1,
                "worker_id": "w/1",
                "started_at": now.isoformat(),
                "finished_at": now.isoformat(),
                "outcome": "succeeded",
            }
        ],
    )

    result.refresh()

    assert result.status == Status.SUCCESSFUL
    assert result.return_value == 3
    assert result.worker_ids == ["w/1"]
    assert result.attempts == 1
    assert result.errors == []
    assert result.finished_at == now


def test_refresh_reads_stored_errors_as_task_errors():
    result = tasks.fail.enqueue()
    now = timezone.now()
    log = [
        {
            "attempt": n,
            "worker_id": f"w/{n}",
            "started_at": now.isoformat(),
            "finished_at": now.isoformat(),
            "outcome": "error",
            "error_class": "builtins.ValueError",
            "message": "boom",
            "traceback": f"Traceback {n}\nValueError: boom\n",
        }
        for n in (1, 2)
    ]
    Job.objects.filter(pk=int(result.id)).update(
        status=JobStatus.FAILED, attempts=2, finished_at=now, attempt_log=log
    )

    result.refresh()

    assert result.status == Status.FAILED
    assert [e.exception_class_path for e in result.errors] == [
        "builtins.ValueError"
    ] * 2
    assert result.errors[0].exception_class is ValueError
    assert result.errors[1].traceback == "Traceback 2\nValueError: boom\n"
    assert result.worker_ids == ["w/1", "w/2"]


# async twins --------------------------------------------------------------------------


def test_aenqueue_aget_result_and_arefresh():
    async def scenario() -> tuple[Any, Any]:
        enqueued = await tasks.add.aenqueue(20, 22)
        fetched = await tasks.add.aget_result(enqueued.id)
        await enqueued.arefresh()
        return enqueued, fetched

    enqueued, fetched = async_to_sync(scenario)()

    assert enqueued.status == Status.READY
    assert isinstance(enqueued.id, str)
    assert fetched.id == enqueued.id
    assert fetched.args == [20, 22]
    assert Job.objects.get().args == [20, 22]


def test_aget_result_raises_does_not_exist_and_mismatch():
    other = tasks.noop.enqueue()

    async def missing() -> None:
        await tasks.add.aget_result("424242")

    async def mismatch() -> None:
        await tasks.add.aget_result(other.id)

    with pytest.raises(compat.TaskResultDoesNotExist) as info:
        async_to_sync(missing)()
    assert str(info.value) == "No job has the id '424242'."
    with pytest.raises(compat.TaskResultMismatch) as info2:
        async_to_sync(mismatch)()
    assert (
        str(info2.value) == "Task does not match (received 'tests.testapp.tasks.noop')"
    )


def test_arefresh_sees_a_status_change():
    result = tasks.add.enqueue(1, 2)
    Job.objects.filter(pk=int(result.id)).update(
        status=JobStatus.SUCCEEDED, return_value=3, finished_at=timezone.now()
    )

    async_to_sync(result.arefresh)()

    assert result.status == Status.SUCCESSFUL
    assert result.return_value == 3


# signals ------------------------------------------------------------------------------


def test_task_enqueued_is_sent_with_the_backend_class_as_sender():
    with _Recorder() as rec:
        result = tasks.add.enqueue(1, 2)

    assert rec.events == [("task_enqueued", DatabaseBackend, result.id, Status.READY)]


def test_task_enqueued_is_sent_by_aenqueue():
    with _Recorder() as rec:
        result = async_to_sync(tasks.add.aenqueue)(1, 2)

    assert rec.events == [("task_enqueued", DatabaseBackend, result.id, Status.READY)]


def test_task_enqueued_is_sent_once_per_bulk_enqueued_job():
    with _Recorder() as rec:
        results = bulk_enqueue(tasks.add, [((i, i), {}) for i in range(3)])

    assert rec.events == [
        ("task_enqueued", DatabaseBackend, r.id, Status.READY) for r in results
    ]


def test_no_signal_for_a_rejected_enqueue():
    with _Recorder() as rec, pytest.raises(TypeError):
        add.enqueue(1, object())

    assert rec.events == []


@pytest.mark.django_db(transaction=True)
def test_started_and_finished_signals_come_from_a_worker_with_the_backend_class():
    ok = tasks.add.enqueue(2, 3)
    bad = tasks.fail.enqueue("no")

    with _Recorder() as rec:
        _run_worker_child_in_process()

    assert {e[2] for e in rec.of("task_started")} == {ok.id, bad.id}
    # fail() is retried (RETRY_DELAY is 0 in the test settings): one start per attempt.
    attempts = get_settings().MAX_ATTEMPTS
    assert [e[2] for e in rec.of("task_started")].count(bad.id) == attempts
    assert all(e[1] is DatabaseBackend for e in rec.events)
    assert all(e[3] == Status.RUNNING for e in rec.of("task_started"))
    assert sorted((e[2], e[3]) for e in rec.of("task_finished")) == sorted(
        [(ok.id, Status.SUCCESSFUL), (bad.id, Status.FAILED)]
    )

    ok.refresh()
    assert ok.status == Status.SUCCESSFUL
    assert ok.return_value == 5
    assert ok.attempts == 1
    assert ok.worker_ids[0].startswith("test-worker/")
    bad.refresh()
    assert bad.status == Status.FAILED
    assert len(bad.errors) == attempts
    assert {e.exception_class for e in bad.errors} == {ValueError}
    assert "ValueError: no" in bad.errors[-1].traceback


# bulk_enqueue -------------------------------------------------------------------------


def test_bulk_enqueue_inserts_a_thousand_jobs_in_few_statements():
    calls = [((i,), {"subject": f"s{i}"}) for i in range(1000)]
    # Batches are as large as the database allows: SQLite's variable limit is read
    # from the library on Django 6 but assumed to be 999 on Django 5.2.
    fields = [f for f in Job._meta.concrete_fields if not f.primary_key]
    batch = min(2000, _db().ops.bulk_batch_size(fields, [Job()] * 1000))
    most = -(-1000 // batch)

    with CaptureQueriesContext(_db()) as ctx:
        results = bulk_enqueue(tasks.send_email, calls)

    inserts = [
        q
        for q in ctx.captured_queries
        if q["sql"].lstrip().upper().startswith("INSERT")
    ]
    assert 1 <= len(inserts) <= max(2, most)
    assert len(results) == 1000
    assert all(isinstance(r.id, str) and r.id.isdigit() for r in results)
    assert len({r.id for r in results}) == 1000
    assert Job.objects.count() == 1000
    stored = dict(Job.objects.values_list("pk", "kwargs"))
    for i, result in enumerate(results):
        assert result.args == [i]
        assert result.status == Status.READY
        assert stored[int(result.id)] == {"subject": f"s{i}"}
    assert set(Job.objects.values_list("queue", flat=True)) == {"emails"}
    assert set(Job.objects.values_list("priority", flat=True)) == {5}


def test_bulk_enqueue_honours_using_options():
    when = timezone.now() + timedelta(days=1)
    task = tasks.add.using(priority=3, queue_name="reports", run_after=when)

    results = bulk_enqueue(task, [((1, 2), {}), ((3, 4), {})])

    jobs = Job.objects.filter(pk__in=[int(r.id) for r in results])
    assert {(j.priority, j.queue, j.status, j.run_after) for j in jobs} == {
        (3, "reports", JobStatus.SCHEDULED, when)
    }


def test_bulk_enqueue_accepts_a_generator_and_an_empty_list():
    results = bulk_enqueue(tasks.add, (((i, 1), {}) for i in range(4)))
    assert [r.args for r in results] == [[0, 1], [1, 1], [2, 1], [3, 1]]
    assert bulk_enqueue(tasks.add, []) == []
    assert Job.objects.count() == 4


def test_bulk_enqueue_rejects_the_whole_batch_when_one_call_is_not_json():
    calls: list[Any] = [((1, 2), {}), ((3, {4}), {}), ((5, 6), {})]

    with pytest.raises(TypeError) as info:
        bulk_enqueue(tasks.add, calls)

    assert str(info.value).startswith(
        "Argument args[1] of task 'tests.testapp.tasks.add' is a builtins.set, "
    )
    assert Job.objects.count() == 0


@override_settings(TASKS=WITH_IMMEDIATE)
def test_bulk_enqueue_with_another_backend_raises_type_error():
    task = tasks.add.using(backend="immediate")

    with pytest.raises(TypeError) as info:
        bulk_enqueue(task, [((1, 2), {})])

    assert str(info.value) == (
        "bulk_enqueue needs geartrain's DatabaseBackend, but task "
        "'tests.testapp.tasks.add' uses backend 'immediate' (ImmediateBackend)."
    )
    assert Job.objects.count() == 0
