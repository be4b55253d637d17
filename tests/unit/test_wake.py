"""The pipe that wakes a worker's idle children (vendors without NOTIFY)."""

from __future__ import annotations

import multiprocessing
import time

import pytest

from geartrain.worker.wake import Wake

fork = multiprocessing.get_context("fork")


def _wait_and_report(wake: Wake, timeout: float, out: object) -> None:
    started = time.monotonic()
    poked = wake.wait(timeout)
    out.put((poked, time.monotonic() - started))  # type: ignore[attr-defined]


@pytest.fixture
def wake():
    made = Wake(siblings=2)
    yield made
    made.close()


def test_a_wait_without_a_poke_times_out(wake):
    started = time.monotonic()
    assert wake.wait(0.05) is False
    assert time.monotonic() - started >= 0.05


def test_a_poke_wakes_waiting_siblings_in_other_processes(wake):
    out = fork.Queue()
    waiters = [
        fork.Process(target=_wait_and_report, args=(wake, 30.0, out)) for _ in range(2)
    ]
    for process in waiters:
        process.start()
    time.sleep(0.2)  # both are waiting
    wake.poke()
    results = [out.get(timeout=10) for _ in waiters]
    for process in waiters:
        process.join(timeout=10)
    assert [poked for poked, _ in results] == [True, True]
    assert all(seconds < 10 for _, seconds in results)


def test_a_poke_nobody_waited_for_ends_a_later_wait_at_once(wake):
    wake.poke()
    assert wake.wait(30.0) is True
    assert wake.wait(30.0) is True  # one byte per sibling
    assert wake.wait(0.01) is False


def test_a_full_pipe_never_blocks_the_poker():
    lone = Wake(siblings=4096)
    try:
        for _ in range(100):  # far beyond the pipe's buffer
            lone.poke()
        assert lone.wait(0) is True
    finally:
        lone.close()


def test_a_worker_of_one_child_pokes_nobody():
    lone = Wake(siblings=0)
    try:
        lone.poke()
        assert lone.wait(0.01) is False
    finally:
        lone.close()


def test_a_poke_can_wake_every_child(wake):
    wake.poke(3)
    assert [wake.wait(0) for _ in range(4)] == [True, True, True, False]


def test_take_consumes_one_poke_and_never_blocks(wake):
    wake.poke(2)
    wake.take()
    assert wake.wait(0) is True  # the second byte
    wake.take()  # nothing left: returns at once
    assert wake.wait(0) is False
