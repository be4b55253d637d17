"""The claim contract, per database vendor, proven with a second connection."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from geartrain import bulk_enqueue
from geartrain.models import Job, JobStatus
from geartrain.queue import get_strategy
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def claim(limit: int, owner: str = "w/1") -> list[Job]:
    return get_strategy("default").claim(["default"], limit, owner, 30)


@contextlib.contextmanager
def held_elsewhere(hold: Callable[[], object]) -> Iterator[None]:
    """Run ``hold`` in another thread's transaction, left open until the block ends.

    The rows ``hold`` locks stay locked meanwhile.
    """
    held = threading.Event()
    release = threading.Event()

    def run() -> None:
        with transaction.atomic():
            hold()
            held.set()
            release.wait(10)
        connections.close_all()

    holder = threading.Thread(target=run)
    holder.start()
    try:
        assert held.wait(10)
        yield
    finally:
        release.set()
        holder.join()


@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite has one writer")
def test_a_row_locked_elsewhere_is_skipped_not_waited_for():
    first, second, third = (tasks.add.enqueue(i, i) for i in range(3))

    with held_elsewhere(lambda: Job.objects.select_for_update().get(pk=first.id)):
        claimed = claim(3)
        # The locked row is skipped at once; the other two are claimed.
        assert [str(j.pk) for j in claimed] == [second.id, third.id]
    assert [str(j.pk) for j in claim(3)] == [first.id]


def test_claim_orders_by_priority_then_age_and_marks_the_lease():
    low = tasks.add.using(priority=-1).enqueue(1, 1)
    old = tasks.add.enqueue(2, 2)
    high = tasks.add.using(priority=9).enqueue(3, 3)
    new = tasks.add.enqueue(4, 4)
    claimed = claim(10, owner="host-1-abc/42")
    assert [str(j.pk) for j in claimed] == [high.id, old.id, new.id, low.id]
    for job in claimed:
        assert job.status == JobStatus.RUNNING
        assert job.lease_owner == "host-1-abc/42"
        assert job.lease_expires_at is not None
        assert job.attempts == 1
        assert job.started_at is not None


def test_claim_respects_limit_queue_and_run_after():
    tasks.send_email.enqueue("x@example.com")
    bulk_enqueue(tasks.noop, [((), {})] * 5)
    assert len(claim(3)) == 3
    assert len(claim(10)) == 2
    assert claim(10) == []


def test_concurrent_claims_never_share_a_job():
    bulk_enqueue(tasks.noop, [((), {})] * 300)
    seen: list[int] = []
    lock = threading.Lock()

    def claimer(n: int) -> None:
        while True:
            got = claim(7, owner=f"w/{n}")
            if not got:
                break
            with lock:
                seen.extend(j.pk for j in got)
        connections.close_all()

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 300
    assert len(set(seen)) == 300


def test_release_gives_back_unstarted_jobs_without_counting_an_attempt():
    bulk_enqueue(tasks.noop, [((), {})] * 3)
    claimed = claim(3, owner="w/1")
    strategy = get_strategy("default")
    assert strategy.release("w/2") == 0
    assert strategy.release("w/1", [claimed[0].pk]) == 1
    job = Job.objects.get(pk=claimed[0].pk)
    assert (job.status, job.attempts, job.started_at, job.lease_owner) == (
        JobStatus.READY,
        0,
        None,
        None,
    )
    assert strategy.release("w/1") == 2


def test_writes_need_the_lease():
    tasks.noop.enqueue()
    (job,) = claim(1, owner="w/1")
    strategy = get_strategy("default")
    assert not strategy.finish(job.pk, "w/2", status=JobStatus.SUCCEEDED)
    assert strategy.finish(job.pk, "w/1", status=JobStatus.SUCCEEDED)
    assert Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED


def test_renew_extends_only_the_workers_own_leases():
    bulk_enqueue(tasks.noop, [((), {})] * 2)
    mine = claim(1, owner="host-1-aaa/10")
    theirs = claim(1, owner="host-2-bbb/11")
    before = Job.objects.get(pk=theirs[0].pk).lease_expires_at
    assert get_strategy("default").renew("host-1-aaa/", 300) == 1
    assert Job.objects.get(pk=mine[0].pk).lease_expires_at > before
    assert Job.objects.get(pk=theirs[0].pk).lease_expires_at == before


@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite has one writer")
def test_renew_skips_a_job_whose_outcome_is_being_written():
    bulk_enqueue(tasks.noop, [((), {})] * 2)
    busy, free = claim(2, owner="host-1-aaa/10")
    before = Job.objects.get(pk=busy.pk).lease_expires_at
    locked, release = threading.Event(), threading.Event()

    def write_outcome() -> None:
        with transaction.atomic():
            Job.objects.select_for_update().get(pk=busy.pk)
            locked.set()
            release.wait(10)
        connections.close_all()

    holder = threading.Thread(target=write_outcome)
    holder.start()
    try:
        assert locked.wait(10)
        # No wait for the locked row (waiting could deadlock with the outcome's
        # transaction); the next heartbeat renews it.
        assert get_strategy("default").renew("host-1-aaa/", 300) == 1
    finally:
        release.set()
        holder.join(10)
    assert Job.objects.get(pk=busy.pk).lease_expires_at == before
    assert Job.objects.get(pk=free.pk).lease_expires_at > before
    assert get_strategy("default").renew("host-1-aaa/", 300) == 2


def test_promote_due_turns_scheduled_jobs_ready():
    soon = tasks.noop.using(run_after=timezone.now() + timedelta(hours=1)).enqueue()
    Job.objects.filter(pk=soon.id).update(run_after=timezone.now())
    strategy = get_strategy("default")
    assert strategy.next_due() is not None
    assert strategy.promote_due() == 1
    assert Job.objects.get(pk=soon.id).status == JobStatus.READY
    assert strategy.next_due() is None


def _due_jobs(count: int) -> list[str]:
    """``count`` scheduled jobs, due in the order made, and one not yet due."""
    now = timezone.now()
    ids = []
    for i in range(count):
        job = tasks.noop.using(run_after=now + timedelta(hours=1)).enqueue()
        Job.objects.filter(pk=job.id).update(
            run_after=now - timedelta(minutes=count - i)
        )
        ids.append(job.id)
    tasks.noop.using(run_after=now + timedelta(hours=1)).enqueue()
    return ids


def _ready_ids() -> list[str]:
    ready = Job.objects.filter(status=JobStatus.READY).order_by("run_after")
    return [str(pk) for pk in ready.values_list("pk", flat=True)]


def test_promotion_is_bounded_and_takes_the_earliest_due_first():
    due = _due_jobs(5)
    strategy = get_strategy("default")

    assert strategy.promote_due(limit=2) == 2
    assert _ready_ids() == due[:2]
    assert strategy.promote_due(limit=2) == 2
    assert strategy.promote_due(limit=2) == 1
    assert strategy.promote_due(limit=2) == 0
    assert _ready_ids() == due
    assert Job.objects.filter(status=JobStatus.SCHEDULED).count() == 1  # not yet due


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SKIP LOCKED in UPDATE")
def test_rows_another_worker_is_promoting_are_skipped_not_waited_for():
    due = _due_jobs(5)

    with held_elsewhere(lambda: get_strategy("default").promote_due(limit=2)):
        # The two rows held by the open transaction are skipped at once.
        assert get_strategy("default").promote_due(limit=10) == 3
    assert _ready_ids() == due


@pytest.mark.skipif(connection.vendor != "postgresql", reason="LISTEN/NOTIFY")
def test_a_notify_wakes_a_waiting_worker_and_a_dropped_listener_is_replaced():
    strategy = get_strategy("default")
    try:
        strategy.wait_for_work(0.01)  # connects and listens
        listener = strategy._listener
        assert listener is not None
        assert listener.connected
        raw = listener._wrapper.connection
        tasks.noop.enqueue()  # NOTIFY on commit: already pending, so no wait
        started = time.monotonic()
        strategy.wait_for_work(30)
        assert time.monotonic() - started < 10
        assert listener._wrapper.connection is raw  # read without failing
        with connection.cursor() as cursor:
            pid = raw.info.backend_pid
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        started = time.monotonic()
        strategy.wait_for_work(30)  # the socket turns readable: noticed, not waited
        assert time.monotonic() - started < 10
        assert not listener.connected
        strategy.wait_for_work(0.01)
        assert listener.connected
    finally:
        strategy.close()


def test_a_wait_for_work_ends_when_a_wake_descriptor_turns_readable():
    # The worker's stop pipe (geartrain.worker.wake): on PostgreSQL an idle child
    # waits on it beside LISTEN, elsewhere (without a supervisor) beside its sleep.
    strategy = get_strategy("default")
    read, write = os.pipe()
    try:
        strategy.wait_for_work(0.01)  # PostgreSQL: connects and listens first
        os.write(write, b"\0")
        started = time.monotonic()
        assert strategy.wait_for_work(30, [read]) is False  # woken, not notified
        assert time.monotonic() - started < 10
    finally:
        strategy.close()
        os.close(read)
        os.close(write)


def test_a_claimed_job_comes_back_whole():
    sent = tasks.add.using(priority=3).enqueue(2, 5)
    (job,) = claim(1, owner="w/9")
    fresh = Job.objects.get(pk=job.pk)
    for field in Job._meta.concrete_fields:
        assert getattr(job, field.attname) == getattr(fresh, field.attname), field.name
    assert (str(job.pk), job.args, job.kwargs) == (sent.id, [2, 5], {})
    assert (job.attempt_log, job.priority, job.lease_owner) == ([], 3, "w/9")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="synchronous_commit")
def test_a_claim_inside_a_callers_transaction_leaves_its_commit_durable():
    tasks.noop.enqueue()
    with transaction.atomic(), connection.cursor() as cursor:
        assert len(claim(1)) == 1
        cursor.execute("SHOW synchronous_commit")
        # A worker claims with the outcomes that started a stage: those must
        # commit durably, so the claim turns asynchronous commit on only alone.
        assert cursor.fetchone()[0] == "on"
