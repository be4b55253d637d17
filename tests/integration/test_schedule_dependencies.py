"""Dependencies between schedules (SPEC rows 70-78) against a simulated clock.

``ticker.tick(now)`` is driven with explicit instants; the dependee's outcome is set by
finishing its job row directly (the next tick copies it into the fire). B depends on A
throughout: B's slot waits for a successful run of A that finished after B last started.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.test import override_settings
from django.utils import timezone

from geartrain.models import (
    FireStatus,
    Job,
    JobStatus,
    OnFailure,
    Schedule,
    ScheduleDependency,
)
from geartrain.scheduler import ticker

pytestmark = pytest.mark.django_db(transaction=True)

T = "tests.testapp.tasks."
BASE = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
RECHECK = timedelta(seconds=10)  # DEPENDENCY_RECHECK
INTERVAL = timedelta(seconds=60)  # SCHEDULER_INTERVAL


def at(minutes: float, base: datetime = BASE) -> datetime:
    return base + timedelta(minutes=minutes)


def make(name: str, base: datetime = BASE, **fields) -> Schedule:
    options = {
        "name": name,
        "cron": "*/5 * * * *",
        "timezone": "UTC",
        "task_path": T + "record",
        "kwargs": {"key": name},
        "cron_base": base,
    }
    options.update(fields)
    return Schedule.objects.create(**options)


def depends(depender: Schedule, dependee: Schedule, **fields) -> ScheduleDependency:
    return ScheduleDependency.objects.create(
        depender=depender, dependee=dependee, **fields
    )


def finish(schedule: Schedule, status: str, when: datetime) -> None:
    """Finish the job of the schedule's latest fire (a worker would)."""
    fire = schedule.fires.exclude(job=None).latest("slot")
    Job.objects.filter(pk=fire.job_id).update(status=status, finished_at=when)


def fired(schedule: Schedule) -> list[datetime]:
    rows = schedule.fires.exclude(job=None).order_by("slot")
    return [row.slot for row in rows]


def state(schedule: Schedule) -> tuple[datetime | None, datetime | None, str]:
    row = Schedule.objects.get(pk=schedule.pk)
    return row.next_slot, row.due_at, row.held_reason


def dependency_errors(dep: ScheduleDependency) -> dict[str, list[str]]:
    try:
        dep.full_clean()
    except ValidationError as error:
        return error.message_dict
    return {}


def in_the_future() -> datetime:
    """A whole hour after the real clock: ``changed_at`` of dependencies is real."""
    later = timezone.now() + timedelta(days=1)
    return later.replace(minute=0, second=0, microsecond=0)


# --- gating (rows 70, 71) -------------------------------------------------------------


def test_b_is_held_until_a_succeeds_then_runs_once():
    a, b = make("A"), make("B")
    depends(b, a)
    now = at(5) + SECOND

    report = ticker.tick(now)  # A and B are due together; either may go first

    assert (report.fired, report.held) == (1, 1)
    assert fired(a) == [at(5)]
    assert fired(b) == []
    assert state(b)[:2] == (at(5), now + RECHECK)
    ticker.tick(now + RECHECK)
    assert state(b) == (
        at(5),
        now + 2 * RECHECK,
        "waiting for the run of schedule 'A'",
    )

    finish(a, JobStatus.SUCCEEDED, at(6))
    ticker.tick(at(6.5))

    assert fired(b) == [at(5)]
    assert state(b) == (at(10), at(10), "")
    assert Schedule.objects.get(pk=b.pk).last_fired_at == at(6.5)

    ticker.tick(at(10))  # A's 08:06 success is older than B's last start
    ticker.tick(at(10) + RECHECK)

    assert fired(a) == [at(5), at(10)]
    assert fired(b) == [at(5)]
    assert state(b)[2] == "waiting for the run of schedule 'A'"


def test_a_run_that_finished_during_the_tick_releases_b_once():
    # A tick reads the clock, then the dependee's outcome: a run of A written in
    # between finished "after" the tick's instant. B's start is stamped no earlier
    # than that finish, so the same run of A cannot release B's next slot too.
    a, b = make("A"), make("B")
    depends(b, a)
    ticker.tick(at(5))  # A fires; B waits
    finish(a, JobStatus.SUCCEEDED, at(6) + SECOND)  # written after the next tick began
    ticker.tick(at(6))

    assert fired(b) == [at(5)]
    started = Schedule.objects.get(pk=b.pk).last_fired_at
    assert started == at(6) + SECOND
    assert b.fires.get().fired_at == started

    ticker.tick(at(10) + SECOND)  # A fires its 08:10 slot; B's waits for that run
    assert fired(b) == [at(5)]
    assert state(b)[2] == "waiting for the run of schedule 'A'"


def test_while_a_runs_b_rechecks_after_dependency_recheck():
    a, b = make("A"), make("B")
    depends(b, a)
    now = at(5)
    ticker.tick(now)
    assert state(b)[1] == now + RECHECK

    later = now + RECHECK
    ticker.tick(later)
    assert state(b) == (at(5), later + RECHECK, "waiting for the run of schedule 'A'")

    with override_settings(GEARTRAIN={**settings.GEARTRAIN, "DEPENDENCY_RECHECK": 45}):
        ticker.tick(later + RECHECK)
        assert state(b)[1] == later + RECHECK + timedelta(seconds=45)
    assert fired(b) == []


def test_b_waits_for_every_dependee():
    a, c, b = make("A"), make("C", cron="*/10 * * * *"), make("B")
    depends(b, a)
    depends(b, c)
    ticker.tick(at(10))
    finish(a, JobStatus.SUCCEEDED, at(11))
    ticker.tick(at(11.5))
    assert fired(b) == []
    assert state(b)[2] == "waiting for the run of schedule 'C'"
    finish(c, JobStatus.SUCCEEDED, at(12))
    ticker.tick(at(12.5))
    assert fired(b) == [at(5)]


# --- a disabled or idle dependee (rows 72, 73) -------------------------------------


def test_a_disabled_dependee_that_never_fired_holds_b_without_crashing():
    a, b = make("A", enabled=False), make("B")
    depends(b, a)
    now = at(5)

    report = ticker.tick(now)

    assert (report.fired, report.held) == (0, 1)
    assert state(b) == (
        at(5),
        now + INTERVAL,
        "waiting for schedule 'A', which is disabled",
    )
    assert not a.fires.exists()

    ticker.tick(now + INTERVAL)
    assert state(b)[1] == now + 2 * INTERVAL


def test_a_dependee_disabled_while_b_waits_and_then_deleted():
    a, b = make("A"), make("B")
    depends(b, a)
    ticker.tick(at(5))
    finish(a, JobStatus.FAILED, at(6))
    Schedule.objects.filter(pk=a.pk).update(enabled=False)  # a bulk disable
    ticker.tick(at(7))
    assert state(b)[2] == "waiting for schedule 'A', which is disabled"

    a.delete()  # the dependency goes with it
    ticker.tick(at(8))
    assert fired(b) == [at(5)]


def test_an_idle_dependee_sets_bs_next_check_to_its_next_slot_plus_recheck():
    a, b = make("A", cron="0 * * * *"), make("B")
    depends(b, a)

    ticker.tick(at(5))

    assert state(b) == (at(5), at(60) + RECHECK, "waiting for a run of schedule 'A'")
    assert ticker.next_due() == at(60)  # A's slot comes first

    ticker.tick(at(60))  # A fires; B is not due yet
    assert fired(a) == [at(60)]
    ticker.tick(at(60) + RECHECK)
    assert state(b)[1:] == (at(60) + 2 * RECHECK, "waiting for the run of schedule 'A'")


# --- failure-aware dependencies (row 74) ---------------------------------------------


def test_a_failed_dependee_keeps_b_waiting_by_default():
    a, b = make("A"), make("B")
    dep = depends(b, a)
    assert dep.on_failure == OnFailure.WAIT
    ticker.tick(at(5))
    finish(a, JobStatus.FAILED, at(6))

    ticker.tick(at(6.5))

    assert fired(b) == []
    assert state(b) == (
        at(5),
        at(10) + RECHECK,
        "waiting for a successful run of schedule 'A' (its last failed)",
    )

    ticker.tick(at(10))  # A runs again, and succeeds this time
    finish(a, JobStatus.SUCCEEDED, at(11))
    ticker.tick(at(11.5))
    assert fired(b) == [at(5)]


def test_on_failure_run_fires_b_after_a_failure():
    a, b = make("A"), make("B")
    depends(b, a, on_failure=OnFailure.RUN)
    ticker.tick(at(5))
    finish(a, JobStatus.FAILED, at(6))
    ticker.tick(at(6.5))
    assert fired(b) == [at(5)]


def test_on_failure_run_still_waits_for_a_run_that_has_not_finished():
    a, b = make("A"), make("B")
    depends(b, a, on_failure=OnFailure.RUN)
    ticker.tick(at(5))
    ticker.tick(at(5) + RECHECK)
    assert fired(b) == []
    assert state(b)[2] == "waiting for the run of schedule 'A'"


@pytest.mark.parametrize("status", [JobStatus.FAILED, JobStatus.CANCELLED])
def test_on_failure_skip_records_a_skipped_slot_with_its_reason(status):
    a, b = make("A"), make("B")
    depends(b, a, on_failure=OnFailure.SKIP)
    ticker.tick(at(5))
    finish(a, status, at(6))

    report = ticker.tick(at(6.5))

    assert report.skipped == 1
    skipped = b.fires.get()
    assert (skipped.slot, skipped.status, skipped.job_id, skipped.reason) == (
        at(5),
        FireStatus.SKIPPED,
        None,
        f"schedule 'A' depended on did not succeed ({status} at 2026-03-02 "
        "08:06:00) and the dependency skips then",
    )
    assert state(b) == (at(10), at(10), "")


# --- future dependencies (rows 75, 76) -----------------------------------------------


def test_a_future_dependency_is_ignored_for_bs_first_run_after_each_edit():
    base = in_the_future()
    a, b = make("A", base), make("B", base)
    dep = depends(b, a, future=True)

    ticker.tick(at(5, base))  # B's first run after the dependency ignores it
    assert fired(b) == [at(5, base)]

    ticker.tick(at(10, base))  # later runs need a new run of A
    assert fired(b) == [at(5, base)]
    assert state(b)[2] == "waiting for the run of schedule 'A'"
    finish(a, JobStatus.SUCCEEDED, at(11, base))
    ticker.tick(at(11.5, base))
    assert fired(b) == [at(5, base), at(10, base)]

    # An edit at 12:00 makes the next run independent again.
    ScheduleDependency.objects.filter(pk=dep.pk).update(changed_at=at(12, base))
    ticker.tick(at(15, base))
    assert fired(b) == [at(5, base), at(10, base), at(15, base)]
    ticker.tick(at(20, base))
    assert fired(b)[-1] == at(15, base)


def test_a_future_self_dependency_keeps_a_from_overlapping_its_previous_run():
    base = in_the_future()
    a = make("A", base)
    dep = ScheduleDependency(depender=a, dependee=a, future=True)
    assert dependency_errors(dep) == {}
    dep.save()

    ticker.tick(at(5, base))
    ticker.tick(at(10, base))  # the 5-minute job still runs

    assert fired(a) == [at(5, base)]
    assert state(a)[2] == "waiting for the run of schedule 'A'"
    finish(a, JobStatus.SUCCEEDED, at(11, base))
    ticker.tick(at(11.5, base))
    assert fired(a) == [at(5, base), at(10, base)]


def test_a_non_future_self_dependency_is_refused():
    a = make("A")
    errors = dependency_errors(ScheduleDependency(depender=a, dependee=a))
    assert errors == {
        "future": [
            "Schedule 'A' cannot depend on itself unless the dependency is 'future "
            "only' (wait for its own previous run). Tick 'future only', or choose "
            "another schedule."
        ]
    }


# --- cycles and pairs (rows 77, 78) ---------------------------------------------------


def test_a_cycle_is_refused_and_a_future_back_edge_accepted():
    a, b, c = make("A"), make("B"), make("C")
    depends(a, b)
    depends(b, c)

    closing = ScheduleDependency(depender=c, dependee=a)
    assert dependency_errors(closing) == {
        "dependee": [
            "This dependency creates a cycle: 'A' -> 'B' -> 'C' -> 'A'. A schedule "
            "cannot wait, even indirectly, for itself. Remove one of the "
            "dependencies, or make this one 'future only'."
        ]
    }
    back = ScheduleDependency(depender=b, dependee=a)
    assert dependency_errors(back)["dependee"] == [
        "This dependency creates a cycle: 'A' -> 'B' -> 'A'. A schedule cannot "
        "wait, even indirectly, for itself. Remove one of the dependencies, or "
        "make this one 'future only'."
    ]

    future_back = ScheduleDependency(depender=c, dependee=a, future=True)
    assert dependency_errors(future_back) == {}
    future_back.save()
    assert dependency_errors(ScheduleDependency(depender=b, dependee=a)) != {}


def test_editing_a_dependency_into_a_cycle_is_refused():
    a, b = make("A"), make("B")
    depends(a, b)
    back = depends(b, a, future=True)
    back.future = False
    assert "dependee" in dependency_errors(back)


def test_a_dependency_pair_is_unique():
    a, b = make("A"), make("B")
    depends(b, a)
    duplicate = ScheduleDependency(depender=b, dependee=a, future=True)
    assert dependency_errors(duplicate) == {
        "__all__": [
            "Schedule dependency with this Depender and Dependee already exists."
        ]
    }
    with pytest.raises(IntegrityError), transaction.atomic():
        duplicate.save()
    assert ScheduleDependency.objects.count() == 1


# --- held slots and misfire policies --------------------------------------------------


def test_a_held_slot_is_dropped_by_skip_once_it_is_later_than_grace():
    a, b = make("A"), make("B", misfire="skip", grace_seconds=60)
    depends(b, a)
    ticker.tick(at(5))
    ticker.tick(at(5) + RECHECK)  # still within grace: held again
    assert not b.fires.exists()

    report = ticker.tick(at(7))

    assert report.skipped == 1
    skipped = b.fires.get()
    assert (skipped.slot, skipped.status, skipped.reason) == (
        at(5),
        FireStatus.SKIPPED,
        "1 slot more than 60 s late (misfire policy skip)",
    )
    assert state(b) == (at(10), at(10), "")


def test_a_long_held_backlog_is_coalesced_into_one_run():
    a, b = make("A", cron="0 * * * *"), make("B", misfire="coalesce", grace_seconds=60)
    depends(b, a)
    ticker.tick(at(5))
    ticker.tick(at(60))
    finish(a, JobStatus.SUCCEEDED, at(61))

    ticker.tick(at(61.5))

    assert fired(b) == [at(60)]
    dropped = b.fires.get(status=FireStatus.SKIPPED)
    assert dropped.reason == (
        "11 slots from 2026-03-02T08:05:00+00:00 to 2026-03-02T08:55:00+00:00 "
        "coalesced into the run of slot 2026-03-02T09:00:00+00:00"
    )


def test_a_dependee_with_no_slot_left_holds_b_at_the_slow_pace():
    a = make("A", end_at=at(1))  # ends before its first slot: never fires
    b = make("B")
    depends(b, a)
    now = at(5)

    ticker.tick(now)

    assert state(b) == (
        at(5),
        now + INTERVAL,
        "waiting for schedule 'A', which has no slot left",
    )


def test_run_now_counts_as_the_dependers_last_start():
    from geartrain.scheduler import api

    a, b = make("A"), make("B")
    depends(b, a)
    ticker.tick(at(5))  # A fires; B is held
    finish(a, JobStatus.SUCCEEDED, at(6))
    before = Schedule.objects.get(pk=b.pk).total_runs

    fire = api.run_now(b)

    row = Schedule.objects.get(pk=b.pk)
    assert (row.last_fired_at, row.total_runs) == (fire.fired_at, before + 1)
    # A's success at 08:06 is older than B's manual start: B's next slot waits again.
    ticker.tick(max(at(10), fire.fired_at) + SECOND)
    assert fired(b) == [None]


def test_a_failed_run_releases_a_future_self_dependency_under_wait():
    base = in_the_future()
    a = make("A", base)
    depends(a, a, future=True)  # ignored for A's first start
    ticker.tick(at(5, base))
    ticker.tick(at(10, base))
    assert fired(a) == [at(5, base)]  # held: the first run is unfinished
    finish(a, JobStatus.FAILED, at(11, base))

    ticker.tick(at(11.5, base))

    assert fired(a) == [at(5, base), at(10, base)]


def test_the_tick_gives_a_bulk_enabled_schedule_its_next_slot():
    a = make("A", enabled=False)
    assert state(a)[1] is None
    Schedule.objects.filter(pk=a.pk).update(enabled=True)  # bypasses save()

    ticker.tick(at(5))  # from cron_base, as it never fired

    assert fired(a) == [at(5)]
