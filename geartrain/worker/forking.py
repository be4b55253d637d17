"""Forking a worker's children without losing a stop signal sent meanwhile.

A forked process runs its parent's Python signal handlers until it installs its own.
A SIGTERM that reached a new child in between ran the supervisor's handler in the
child's copy of the supervisor, and the child, none the wiser, went on serving: the
worker then waited ``SHUTDOWN_TIMEOUT`` and killed it. So the supervisor forks with
SIGTERM and SIGINT blocked (:func:`stop_signals_blocked`), and the child unblocks
them once its own handlers are in place (:func:`unblock_stop_signals`); a signal sent
in between stays pending and reaches the child's handler then.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


@contextlib.contextmanager
def stop_signals_blocked() -> Iterator[None]:
    """Block SIGTERM and SIGINT in this thread (and what it forks) for the block."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def unblock_stop_signals() -> None:
    """Let SIGTERM and SIGINT in: for a child whose own handlers are installed."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


__all__ = ["STOP_SIGNALS", "stop_signals_blocked", "unblock_stop_signals"]
