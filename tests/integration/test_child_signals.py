"""A worker child forked with SIGTERM pending stops as soon as its loop starts.

The supervisor forks children with the stop signals blocked (see
``geartrain.worker.forking``); ``Child.run`` unblocks them once its handler is in
place. Here a real ``Child`` is forked the same way, after sending itself SIGTERM: it
must stop at once, with exit status 0, instead of serving (its signal lost, or never
let in).
"""

from __future__ import annotations

import multiprocessing
import os
import signal

from django.db import connections

from geartrain.conf import get_settings
from geartrain.worker.child import EXIT_OK
from geartrain.worker.forking import stop_signals_blocked
from geartrain.worker.supervisor import _child_main

fork = multiprocessing.get_context("fork")


def _terminated_before_run() -> None:
    os.kill(os.getpid(), signal.SIGTERM)  # as a supervisor stopping meanwhile would
    slot = fork.RawArray("d", 2)
    _child_main("forking-test", ["default"], slot, get_settings(), False, None, None)


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
