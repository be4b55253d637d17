"""The worker supervisor: starts N children, replaces dead ones, stops gracefully.

It never runs user code. Besides watching children it renews their leases (heartbeat),
runs the reaper, and ends a child whose job outlives its timeout. With
``with_scheduler`` it also runs a :class:`geartrain.scheduler.loop.Scheduler` in one
more forked process, replaced like a child when it dies.

Signals: the first SIGTERM/SIGINT stops claiming, lets running jobs finish within the
shutdown timeout (children give back claimed but unstarted jobs) and exits 0. A second
signal kills the children at once and exits 1; their jobs are returned immediately.
The scheduler process stops after its current tick.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Sequence
from multiprocessing.connection import wait
from typing import Any

from django.db import Error as DatabaseError
from django.db import connections

from geartrain.conf import Settings
from geartrain.scheduler.loop import Scheduler
from geartrain.worker import lifecycle, slots
from geartrain.worker.child import EXIT_OK, EXIT_RECYCLE, Child
from geartrain.worker.forking import stop_signals_blocked
from geartrain.worker.wake import Wake

logger = logging.getLogger(__name__)

_mp = multiprocessing.get_context("fork")
RECOVERY_GRACE = 10.0
"""Seconds after the shutdown deadline a stopping worker keeps trying to recover."""

BURST_WITH_SCHEDULER = (
    "--with-scheduler cannot go with --burst: a scheduler runs until stopped, a burst "
    "worker stops when no job is ready. Run `geartrain scheduler --once` before the "
    "burst worker instead."
)
SCHEDULER_RESPAWN = 1.0
"""Shortest time between two starts of the scheduler process, in seconds."""


@dataclasses.dataclass(slots=True)
class ChildHandle:
    """The supervisor's view of one child."""

    process: Any
    slot: Any
    timed_out_job: int = 0

    @property
    def owner(self) -> str:
        return f"{self.process.name}/{self.process.pid}"


def _child_main(
    worker_id: str,
    queues: Sequence[str],
    slot: Any,
    conf: Settings,
    burst: bool,
    max_jobs: int | None,
    wake: Wake | None,
    parent_pid: int,
) -> None:
    child = Child(
        worker_id=worker_id,
        queues=queues,
        slot=slot,
        conf=conf,
        burst=burst,
        max_jobs=max_jobs,
        wake=wake,
        parent_pid=parent_pid,
    )
    raise SystemExit(child.run())


def _scheduler_main(conf: Settings, parent_pid: int) -> None:
    scheduler = Scheduler(conf, parent_pid=parent_pid, ignore_sigint=True)
    raise SystemExit(scheduler.run())


class Supervisor:
    """Runs ``concurrency`` children serving ``queues``."""

    def __init__(
        self,
        *,
        queues: Sequence[str],
        concurrency: int,
        conf: Settings,
        burst: bool = False,
        max_jobs_per_child: int | None = None,
        shutdown_timeout: float | None = None,
        worker_id: str | None = None,
        with_scheduler: bool = False,
    ) -> None:
        self.queues = list(queues)
        self.concurrency = concurrency
        self.conf = conf
        self.burst = burst
        self.max_jobs = max_jobs_per_child
        self.shutdown_timeout = (
            conf.SHUTDOWN_TIMEOUT if shutdown_timeout is None else shutdown_timeout
        )
        if burst and with_scheduler:
            raise ValueError(BURST_WITH_SCHEDULER)
        self.worker_id = worker_id or lifecycle.new_worker_id()
        self.children: list[ChildHandle] = []
        self.stopping = False
        self.forced = False
        self.stop_deadline = 0.0
        self._next: dict[str, float] = {}
        self.unrecovered: list[tuple[ChildHandle, int]] = []
        self.with_scheduler = with_scheduler
        self.scheduler: Any = None
        self.wake: Wake | None = None

    # Signals ---------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: Any) -> None:
        if not self.stopping:
            logger.info(
                "Worker %s stopping: finishing running jobs (up to %ss)",
                self.worker_id,
                self.shutdown_timeout,
            )
            self.stopping = True
            self.stop_deadline = time.monotonic() + self.shutdown_timeout
            self._signal_children(signal.SIGTERM)
            # Idle children see the stop now, not after a poll.
            if self.wake is not None:
                self.wake.poke(len(self.children))
        else:
            logger.warning("Worker %s forced to stop", self.worker_id)
            self.forced = True
            self._signal_children(signal.SIGKILL)

    def _signal_children(self, signum: int) -> None:
        processes = [handle.process for handle in self.children]
        if self.scheduler is not None:
            processes.append(self.scheduler)
        for process in processes:
            if process.is_alive() and process.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signum)

    # Main loop -------------------------------------------------------------------

    def run(self) -> int:
        """Serve until stopped (or, with ``burst``, until no ready job is left)."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        lifecycle.register(self.worker_id, self.queues, self.concurrency, self.conf)
        logger.info(
            "Worker %s started queues=%s concurrency=%s",
            self.worker_id,
            ",".join(self.queues),
            self.concurrency,
        )
        # Opened before any fork: every child, replacements too, shares it.
        self.wake = Wake(siblings=self.concurrency - 1)
        if self.with_scheduler:
            self._spawn_scheduler()
        for _ in range(self.concurrency):
            self._spawn()  # none once stopping: see _spawn
        while self.children or self.unrecovered or self.scheduler is not None:
            if not self.children:
                self._retry_recoveries()
                self._abandon_recoveries()
            sentinels = [h.process.sentinel for h in self.children]
            if self.scheduler is not None:
                sentinels.append(self.scheduler.sentinel)
            if not sentinels:
                time.sleep(0.5)
                continue
            wait(sentinels, timeout=0.1)
            self._collect_exited()
            self._collect_scheduler()
            self._enforce_timeouts()
            self._periodic()
            if self.stopping and time.monotonic() > self.stop_deadline:
                self._signal_children(signal.SIGKILL)
        self._safely(lifecycle.unregister, self.worker_id, self.conf)
        connections.close_all()
        self.wake.close()
        logger.info("Worker %s stopped", self.worker_id)
        return 1 if self.forced else 0

    def _spawn(self) -> None:
        # Children must not share the supervisor's database connections.
        connections.close_all()
        slot = _mp.RawArray("d", 2)
        process = _mp.Process(
            target=_child_main,
            name=self.worker_id,
            args=(
                self.worker_id,
                self.queues,
                slot,
                self.conf,
                self.burst,
                self.max_jobs,
                self.wake,
                os.getpid(),
            ),
            daemon=False,
        )
        # Blocked from the last look at self.stopping until the child is in
        # self.children and has its own handler (Child.run): a stop that arrives
        # meanwhile is handled after, and reaches the new child too.
        with stop_signals_blocked():
            if self.stopping:
                return
            process.start()
            self.children.append(ChildHandle(process=process, slot=slot))

    def _spawn_scheduler(self) -> None:
        connections.close_all()
        self._next["scheduler"] = time.monotonic() + SCHEDULER_RESPAWN
        process = _mp.Process(
            target=_scheduler_main,
            name=f"{self.worker_id}-scheduler",
            args=(self.conf, os.getpid()),
            daemon=False,
        )
        with stop_signals_blocked():  # as for a child (_spawn)
            if self.stopping:
                return
            process.start()
            self.scheduler = process
        logger.info("Worker %s started scheduler pid=%s", self.worker_id, process.pid)

    def _collect_scheduler(self) -> None:
        """Notice a scheduler process that exited; start a new one unless stopping."""
        process = self.scheduler
        if process is not None and process.exitcode is not None:
            self.scheduler = None
            if process.exitcode != 0 or not self.stopping:
                logger.error(
                    "Scheduler pid=%s exited with code %s",
                    process.pid,
                    process.exitcode,
                )
        wanted = self.with_scheduler and not (self.stopping or self.forced)
        if wanted and self.scheduler is None and self._due("scheduler", 0):
            self._spawn_scheduler()

    def _collect_exited(self) -> None:
        for handle in list(self.children):
            if handle.process.exitcode is None:
                continue
            self.children.remove(handle)
            code = handle.process.exitcode
            self.unrecovered.append((handle, code))
            # Return the dead child's jobs first, so a replacement (or, with --burst,
            # the decision to stop) sees them.
            self._retry_recoveries()
            if self._should_respawn(code):
                self._spawn()

    def _retry_recoveries(self) -> None:
        """Recover dead children's jobs; kept for later while the database is down."""
        while self.unrecovered:
            handle, code = self.unrecovered[0]
            if self._safely(self._recover, handle, code) is False:
                return
            self.unrecovered.pop(0)

    def _abandon_recoveries(self) -> None:
        """Stop waiting for the database to recover dead children's jobs.

        Only while stopping, once the shutdown timeout and a further
        :data:`RECOVERY_GRACE` have passed: their leases expire and any other
        worker's reaper gives the jobs back, so a stopping worker need not outlive a
        database outage.
        """
        if not self.unrecovered or not self.stopping:
            return
        if time.monotonic() < self.stop_deadline + RECOVERY_GRACE:
            return
        logger.warning(
            "Worker %s stops without recovering the jobs of %s dead children: the "
            "database is unreachable; their leases will expire and be reaped",
            self.worker_id,
            len(self.unrecovered),
        )
        self.unrecovered.clear()

    def _should_respawn(self, code: int) -> bool:
        if self.stopping or self.forced:
            return False
        if self.burst:
            return code not in (EXIT_OK,)
        return True

    def _recover(self, handle: ChildHandle, code: int) -> bool:
        running = slots.running_job(handle.slot)
        if handle.timed_out_job:
            reason = (
                f"Job {handle.timed_out_job} exceeded its timeout; worker child "
                f"{handle.process.pid} was ended."
            )
            lifecycle.recover_child_jobs(
                handle.owner,
                handle.timed_out_job,
                reason=reason,
                error_class="geartrain.exceptions.JobTimeout",
                conf=self.conf,
            )
            return True
        if code not in (EXIT_OK, EXIT_RECYCLE):
            logger.error(
                "Worker child pid=%s exited with code %s", handle.process.pid, code
            )
        reason = (
            f"Worker child {handle.process.pid} exited with code {code} while running "
            f"the job."
        )
        lifecycle.recover_child_jobs(
            handle.owner,
            running or None,
            reason=reason,
            error_class="geartrain.exceptions.WorkerLost",
            conf=self.conf,
        )
        return True

    def _enforce_timeouts(self) -> None:
        now = time.time()
        for handle in self.children:
            if handle.timed_out_job:
                continue  # killed already
            overdue = slots.overdue_job(handle.slot, now)
            if overdue is not None:
                handle.timed_out_job = overdue
                logger.error(
                    "Job id=%s exceeded its timeout; killing child pid=%s",
                    handle.timed_out_job,
                    handle.process.pid,
                )
                with contextlib.suppress(ProcessLookupError):
                    os.kill(handle.process.pid, signal.SIGKILL)

    def _due(self, name: str, interval: float) -> bool:
        now = time.monotonic()
        if now >= self._next.get(name, 0.0):
            self._next[name] = now + interval
            return True
        return False

    def _periodic(self) -> None:
        if self._due("heartbeat", self.conf.HEARTBEAT_INTERVAL):
            self._safely(
                lifecycle.heartbeat, self.worker_id, self.conf, stopping=self.stopping
            )
        if not self.stopping and self._due("reap", self.conf.REAP_INTERVAL):
            self._safely(lifecycle.reap_expired, self.conf)
            self._safely(lifecycle.forget_dead_workers, self.conf)

    def _safely(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a bookkeeping step; a database outage is logged, not fatal."""
        try:
            return func(*args, **kwargs)
        except DatabaseError:
            logger.warning(
                "Database error in %s; will retry", func.__name__, exc_info=True
            )
            connections.close_all()
            return False
