"""Unique jobs: while a job of the same call waits, enqueueing returns that job.

Uniqueness is a database constraint on ``Job.unique_key``, so it holds under concurrent
enqueues from many connections, not only in one process.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db import connections, transaction
from django.utils import timezone

from geartrain import bulk_enqueue, compat, operations
from geartrain.backends import DatabaseBackend
from geartrain.conf import get_settings
from geartrain.jobs import unique_key
from geartrain.models import Job, JobStatus
from geartrain.queue import get_strategy
from tests.testapp import tasks

pytestmark = pytest.mark.django_db

PATH = "tests.testapp.tasks.unique_report"


def _claim(owner: str = "test-worker/1") -> list[Job]:
    strategy = get_strategy(get_settings().DATABASE)
    return strategy.claim(["default"], 10, owner, 30.0)


def test_same_call_while_waiting_returns_the_same_job():
    first = tasks.unique_report.enqueue("2024-06-01")
    second = tasks.unique_report.enqueue("2024-06-01")

    assert second.id == first.id
    assert Job.objects.count() == 1
    job = Job.objects.get()
    assert job.unique_key == unique_key(PATH, ["2024-06-01"], {})
    assert job.status == JobStatus.READY


def test_different_arguments_make_different_jobs():
    first = tasks.unique_report.enqueue("2024-06-01")
    second = tasks.unique_report.enqueue("2024-06-02")
    by_keyword = tasks.unique_report.enqueue(day="2024-06-01")

    assert len({first.id, second.id, by_keyword.id}) == 3
    assert Job.objects.count() == 3


def test_the_key_ignores_dict_order_and_tuple_versus_list():
    first = tasks.unique_report.enqueue(day={"a": 1, "b": (2, 3)})
    second = tasks.unique_report.enqueue(day={"b": [2, 3], "a": 1})

    assert second.id == first.id
    assert Job.objects.count() == 1


def test_non_unique_tasks_have_no_key():
    tasks.add.enqueue(1, 2)
    tasks.add.enqueue(1, 2)

    assert list(Job.objects.values_list("unique_key", flat=True)) == [None, None]


def test_a_scheduled_job_counts_as_waiting():
    later = timezone.now() + timedelta(hours=1)
    first = tasks.unique_report.using(run_after=later).enqueue("d")
    second = tasks.unique_report.enqueue("d")

    assert second.id == first.id
    assert Job.objects.get().status == JobStatus.SCHEDULED


def test_after_the_job_is_claimed_a_new_job_is_created():
    first = tasks.unique_report.enqueue("2024-06-01")
    claimed = _claim()
    assert [j.pk for j in claimed] == [int(first.id)]
    assert Job.objects.get(pk=int(first.id)).unique_key is None

    second = tasks.unique_report.enqueue("2024-06-01")
    third = tasks.unique_report.enqueue("2024-06-01")

    assert second.id != first.id
    assert third.id == second.id
    assert Job.objects.count() == 2
    assert Job.objects.get(pk=int(second.id)).status == JobStatus.READY


def test_after_the_job_is_cancelled_a_new_job_is_created():
    first = tasks.unique_report.enqueue("x")
    operations.cancel_jobs(Job.objects.filter(pk=int(first.id)))

    second = tasks.unique_report.enqueue("x")

    assert second.id != first.id
    assert Job.objects.get(pk=int(first.id)).status == JobStatus.CANCELLED


def test_the_returned_existing_job_is_read_back_faithfully():
    first = tasks.unique_report.enqueue("x")

    second = tasks.unique_report.enqueue("x")

    assert second.status == compat.TaskResultStatus.READY
    assert second.args == ["x"]
    assert second.enqueued_at == first.enqueued_at


def test_task_enqueued_fires_only_for_the_created_job():
    seen: list[str] = []

    def receiver(sender: Any, task_result: Any, **kwargs: Any) -> None:
        seen.append(task_result.id)

    compat.task_enqueued.connect(receiver, sender=DatabaseBackend, weak=False)
    try:
        first = tasks.unique_report.enqueue("x")
        tasks.unique_report.enqueue("x")
    finally:
        compat.task_enqueued.disconnect(receiver, sender=DatabaseBackend)

    assert seen == [first.id]


def test_bulk_enqueue_collapses_duplicates_onto_one_job():
    results = bulk_enqueue(
        tasks.unique_report, [(("a",), {}), (("a",), {}), (("b",), {})]
    )

    assert results[0].id == results[1].id
    assert results[2].id != results[0].id
    assert Job.objects.count() == 2


def test_bulk_enqueue_fires_task_enqueued_only_for_created_jobs():
    existing = tasks.unique_report.enqueue("a")
    seen: list[str] = []

    def receiver(sender: Any, task_result: Any, **kwargs: Any) -> None:
        seen.append(task_result.id)

    compat.task_enqueued.connect(receiver, sender=DatabaseBackend, weak=False)
    try:
        results = bulk_enqueue(tasks.unique_report, [(("a",), {}), (("b",), {})])
    finally:
        compat.task_enqueued.disconnect(receiver, sender=DatabaseBackend)

    assert results[0].id == existing.id
    assert seen == [results[1].id]


@pytest.mark.django_db(transaction=True)
def test_a_collision_inside_the_callers_transaction_keeps_it_usable():
    with transaction.atomic():
        first = tasks.unique_report.enqueue("x")
        second = tasks.unique_report.enqueue("x")
        Group.objects.create(name="after the collision")

    assert second.id == first.id
    assert Job.objects.count() == 1
    assert Group.objects.filter(name="after the collision").exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_enqueues_of_the_same_call_make_exactly_one_job():
    threads_count = 8
    barrier = threading.Barrier(threads_count)
    ids: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def enqueue() -> None:
        try:
            barrier.wait(timeout=30)
            result = tasks.unique_report.enqueue("2024-06-01")
            with lock:
                ids.append(result.id)
        except BaseException as exc:  # reported below, with the thread's traceback
            with lock:
                errors.append(exc)
        finally:
            connections.close_all()

    for _round in range(3):
        ids.clear()
        Job.objects.all().delete()
        threads = [threading.Thread(target=enqueue) for _ in range(threads_count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        assert errors == []
        assert len(ids) == threads_count
        assert len(set(ids)) == 1
        assert list(Job.objects.values_list("pk", flat=True)) == [int(ids[0])]
