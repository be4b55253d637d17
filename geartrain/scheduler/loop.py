"""The scheduler process: ticks forever, sleeping until the next slot is due.

After each tick it sleeps until the earliest ``due_at`` of any schedule, at most
``SCHEDULER_INTERVAL`` (an edit on SQLite or MariaDB/MySQL is seen within that), at
least :data:`MIN_WAIT`. On PostgreSQL it also LISTENs on channel
``geartrain_schedule`` (migration 0008 notifies it when a schedule's configuration or
a dependency changes), so an edit is picked up at once.

Any number of schedulers may run: the unique (schedule, slot) constraint makes each
slot fire once (see :mod:`geartrain.scheduler.ticker`).

SIGTERM and SIGINT stop it after the current tick. A tick that fails (the database is
down or restarting) is logged; the connections are closed and the next tick comes
after a short back-off.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import time
from datetime import datetime
from typing import Any

from django.db import Error as DatabaseError
from django.db import connections
from django.utils import timezone

from geartrain.conf import Settings, get_settings
from geartrain.queue.notify import Listener, listener_for
from geartrain.scheduler import ticker
from geartrain.worker.forking import unblock_stop_signals

logger = logging.getLogger(__name__)

CHANNEL = "geartrain_schedule"
MIN_WAIT = 0.1
"""Shortest sleep between ticks (a slot still due is locked by another scheduler)."""
LATE = 0.01
"""Sleep this much past the due time, so the tick surely finds the slot due."""
MAX_BACKOFF = 5.0
"""Longest pause after failed ticks, in seconds."""
ORPHAN_CHECK = 1.0
"""How often a scheduler started by a worker checks that its supervisor lives."""


def wait_seconds(next_due: datetime | None, now: datetime, interval: float) -> float:
    """How long to sleep after a tick: until ``next_due``, within bounds."""
    if next_due is None:
        return interval
    until = (next_due - now).total_seconds() + LATE
    return min(max(until, MIN_WAIT), interval)


def backoff_seconds(failures: int, interval: float) -> float:
    """The pause after ``failures`` failed ticks in a row: 0.5, 1, 2, 4, 5, 5…"""
    return min(0.5 * 2.0 ** min(failures - 1, 10), MAX_BACKOFF, interval)


class Scheduler:
    """Runs :func:`ticker.tick` until stopped.

    ``parent_pid``: the worker supervisor that started this scheduler; the scheduler
    exits when it is gone. ``ignore_sigint``: leave Ctrl-C to the supervisor.
    """

    def __init__(
        self,
        conf: Settings | None = None,
        *,
        parent_pid: int | None = None,
        ignore_sigint: bool = False,
    ) -> None:
        self.conf = conf or get_settings()
        self.parent_pid = parent_pid
        self.ignore_sigint = ignore_sigint
        self.stopping = False
        self.ticks = 0
        self.failures = 0
        self.listener: Listener | None = None
        self._wake_r = -1
        self._wake_w = -1
        self._previous: dict[int, Any] = {}

    # Signals ---------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: Any) -> None:
        if not self.stopping:
            logger.info("Scheduler pid=%s stopping after this tick", os.getpid())
        self.stopping = True
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")

    def _install_signals(self) -> None:
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        sigint = signal.SIG_IGN if self.ignore_sigint else self._on_signal
        for signum, handler in (
            (signal.SIGTERM, self._on_signal),
            (signal.SIGINT, sigint),
        ):
            self._previous[signum] = signal.signal(signum, handler)
        # Forked by a worker with them blocked (geartrain.worker.forking): one sent
        # meanwhile arrives now, to these handlers.
        unblock_stop_signals()

    # Main loop -------------------------------------------------------------------

    def run(self) -> int:
        """Tick until SIGTERM/SIGINT (or the parent worker is gone); exit status 0."""
        self._install_signals()
        self.listener = listener_for(self.conf.DATABASE, CHANNEL)
        logger.info(
            "Scheduler pid=%s started (interval %ss%s)",
            os.getpid(),
            self.conf.SCHEDULER_INTERVAL,
            ", woken by NOTIFY" if self.listener else "",
        )
        try:
            if self.listener is not None:
                # Listen before the first tick: an edit made during it wakes us.
                self.listener.wait(0)
            while not self.stopping and not self._orphaned():
                self._sleep(self.step())
        finally:
            self._close()
        logger.info("Scheduler pid=%s stopped after %s ticks", os.getpid(), self.ticks)
        return 0

    def step(self) -> float:
        """One tick, logged; the seconds to sleep before the next."""
        interval = self.conf.SCHEDULER_INTERVAL
        try:
            report = self.tick()
        except DatabaseError:
            self.failures += 1
            logger.warning(
                "Scheduler tick failed (database error, %s in a row); retrying",
                self.failures,
                exc_info=True,
            )
        except Exception:
            self.failures += 1
            logger.exception("Scheduler tick failed (%s in a row)", self.failures)
        else:
            self.failures = 0
            return wait_seconds(report.next_due, timezone.now(), interval)
        connections.close_all()
        return backoff_seconds(self.failures, interval)

    def tick(self) -> ticker.TickReport:
        """One tick: fire what is due now; logged at debug, fires at info."""
        report = ticker.tick()
        self.ticks += 1
        logger.debug(
            "Scheduler tick: %s due schedules, %s fired, %s skipped, %s held; "
            "next due %s",
            report.schedules,
            report.fired,
            report.skipped,
            report.held,
            report.next_due.isoformat() if report.next_due else "never",
        )
        if report.fired:
            logger.info(
                "Scheduler fired %s slots of %s due schedules",
                report.fired,
                report.schedules,
            )
        return report

    def _sleep(self, seconds: float) -> None:
        """Sleep ``seconds``; return early on a signal or a schedule edit."""
        deadline = time.monotonic() + seconds
        while not self.stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self.parent_pid is not None:
                left = min(left, ORPHAN_CHECK)
            wake = [self._wake_r]
            if self.listener is not None:
                if self.listener.wait(left, wake):
                    logger.debug("Scheduler woken by a schedule edit")
                    return
            else:
                select.select(wake, [], [], left)
            self._drain_wake()
            if self._orphaned():
                return

    def _drain_wake(self) -> None:
        with contextlib.suppress(OSError):
            while os.read(self._wake_r, 64):
                pass

    def _orphaned(self) -> bool:
        if self.parent_pid is None or os.getppid() == self.parent_pid:
            return False
        logger.warning("Scheduler pid=%s: its worker is gone; exiting", os.getpid())
        self.stopping = True
        return True

    def _close(self) -> None:
        if self.listener is not None:
            self.listener.close()
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._wake_r = self._wake_w = -1
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        connections.close_all()
