"""A worker child whose supervisor stopped or died while it started does not serve.

The supervisor forks children with the stop signals blocked (see
``geartrain.worker.forking``); ``Child.run`` unblocks them once its handler is in
place. Here a real ``Child`` is forked the same way, after sending itself SIGTERM: it
must stop at once, with exit status 0, instead of serving (its signal lost, or never
let in).

A supervisor killed between the fork and the child's start must not leave an orphan
serving either: the child is told its supervisor's pid rather than reading its
parent's, which by then is whoever adopted it.
"""

from __future__ import annotations

import multiprocessing
import os
import select
import signal
import time

import pytest
from django.db import connections

from geartrain.conf import get_settings
from geartrain.worker.child import EXIT_OK
from geartrain.worker.forking import stop_signals_blocked
from geartrain.worker.supervisor import _child_main

fork = multiprocessing.get_context("fork")


def _serve(supervisor: int) -> None:
    """What the supervisor forks a child to do: serve ``default`` until told not to."""
    slot = fork.RawArray("d", 2)
    _child_main(
        "test", ["default"], slot, get_settings(), False, None, None, supervisor
    )


def _terminated_before_run() -> None:
    os.kill(os.getpid(), signal.SIGTERM)  # as a supervisor stopping meanwhile would
    _serve(os.getppid())


def test_a_sigterm_sent_while_a_child_is_forked_stops_it_cleanly():
    connections.close_all()
    process = fork.Process(target=_terminated_before_run)
    with stop_signals_blocked():
        process.start()
    process.join(20)
    try:
        assert process.exitcode == EXIT_OK
    finally:
        if process.exitcode is None:
            process.kill()
            process.join(5)


def _started_after_its_supervisor_died(supervisor: int, report: int) -> None:
    while os.getppid() == supervisor:  # a slow start: the supervisor is killed first
        time.sleep(0.01)
    try:
        _serve(supervisor)
    except SystemExit as exit:
        os.write(report, str(exit.code).encode())
        raise


def _supervisor_killed_after_forking(report: int) -> None:
    child = fork.Process(
        target=_started_after_its_supervisor_died, args=(os.getpid(), report)
    )
    child.start()
    os.write(report, f"{child.pid} ".encode())
    os.kill(os.getpid(), signal.SIGKILL)


def _read_until_closed(fd: int, timeout: float) -> str:
    """What is written to ``fd`` until every writer is gone or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    text = b""
    while select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
        chunk = os.read(fd, 100)
        if not chunk:
            break
        text += chunk
    return text.decode()


@pytest.mark.django_db(transaction=True)  # else the orphan would fail, not serve
def test_a_child_whose_supervisor_died_before_it_started_exits():
    connections.close_all()
    read, write = os.pipe()
    supervisor = fork.Process(target=_supervisor_killed_after_forking, args=(write,))
    supervisor.start()
    os.close(write)
    supervisor.join(20)
    report = _read_until_closed(read, 20).split()  # the orphan's pid, its exit code
    os.close(read)
    if len(report) < 2:  # still serving: kill it, then fail
        os.kill(int(report[0]), signal.SIGKILL)
    assert report[1:] == [str(EXIT_OK)]
