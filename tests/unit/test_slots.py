"""The slot protocol between a child and its supervisor (``geartrain.worker.slots``).

A real shared array for the writes; for the supervisor's reads, a slot whose values
change between two reads, as they do when the child moves from one job to the next
while the supervisor looks.
"""

from __future__ import annotations

import multiprocessing

import pytest

from geartrain.worker import slots

NOW = 1_000_000.0


class Moving:
    """A slot whose successive reads of each cell return the scripted values."""

    def __init__(self, job: list[float], deadline: list[float]) -> None:
        self.reads = {slots.JOB: list(job), slots.DEADLINE: list(deadline)}

    def __getitem__(self, index: int) -> float:
        values = self.reads[index]
        return values.pop(0) if len(values) > 1 else values[0]


def test_the_child_writes_the_job_then_the_deadline_and_clears_both():
    slot = multiprocessing.RawArray("d", 2)
    slots.running(slot, 42, NOW + 5)
    assert (slots.running_job(slot), slot[slots.DEADLINE]) == (42, NOW + 5)
    assert slots.overdue_job(slot, NOW + 6) == 42
    slots.idle(slot)
    assert (slots.running_job(slot), slots.overdue_job(slot, NOW + 6)) == (0, None)


@pytest.mark.parametrize(
    ("job", "deadline", "overdue"),
    [
        ([7.0], [NOW - 1], 7),  # past its deadline
        ([7.0], [NOW + 1], None),  # not yet
        ([7.0], [0.0], None),  # no timeout
        ([0.0], [0.0], None),  # between jobs
        # Job 7, overdue, ended and job 8 started between the reads: the deadline
        # read may be 7's, but 7 is no longer running, and 8 is not to blame.
        ([7.0, 8.0], [NOW - 1], None),
        ([7.0, 0.0], [NOW - 1], None),  # 7 ended between the reads
    ],
)
def test_the_supervisor_blames_only_the_job_that_is_still_running(
    job, deadline, overdue
):
    assert slots.overdue_job(Moving(job, deadline), NOW) == overdue
