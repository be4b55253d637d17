"""Forking with the stop signals blocked: a SIGTERM sent meanwhile is not lost.

Real forked processes. Each child sends itself SIGTERM before it has a handler of its
own: inherited unblocked, the default action would kill it (exit code -15); forked
with them blocked, the signal waits for the child's handler.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from typing import Any

from geartrain.worker.forking import (
    STOP_SIGNALS,
    stop_signals_blocked,
    unblock_stop_signals,
)

fork = multiprocessing.get_context("fork")


def _signal_self_then_handle(out: Any) -> None:
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    os.kill(os.getpid(), signal.SIGTERM)  # sent before any handler of ours
    received: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    unblock_stop_signals()
    out.put((sorted(STOP_SIGNALS & blocked), received))


def _run(blocked: bool) -> tuple[int | None, Any]:
    out = fork.Queue()
    process = fork.Process(target=_signal_self_then_handle, args=(out,))
    if blocked:
        with stop_signals_blocked():
            process.start()
    else:
        process.start()
    process.join(30)
    report = out.get(timeout=1) if process.exitcode == 0 else None
    return process.exitcode, report


def test_a_child_forked_with_stop_signals_blocked_gets_an_early_sigterm_late():
    exitcode, report = _run(blocked=True)

    assert exitcode == 0
    assert report == (sorted(STOP_SIGNALS), [signal.SIGTERM])


def test_without_blocking_the_same_sigterm_kills_the_child_before_its_handler():
    # What the supervisor did before: the signal reached the child too early.
    exitcode, report = _run(blocked=False)

    assert exitcode == -signal.SIGTERM
    assert report is None


def test_the_parents_mask_is_restored_after_the_fork():
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    with stop_signals_blocked():
        assert signal.pthread_sigmask(signal.SIG_BLOCK, []) >= STOP_SIGNALS

    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before
