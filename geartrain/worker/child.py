"""A worker child: claims jobs in batches, runs them one at a time, records outcomes.

Batches adapt to the jobs: a child starts by claiming one job, grows the batch while
jobs are short (up to ``CLAIM_BATCH_SIZE``) and shrinks it when they are long. Jobs
claimed but not started go back to the queue on shutdown, on recycling, and (through
:mod:`geartrain.worker.prefetch`) as soon as the running job has taken ``SLOW_BATCH``
seconds, so a slow job never holds other jobs hostage for long.

Outcomes are written at the end of each batch: successes in one statement, errors and
postpones one by one; a pipeline step's outcome is written with its run's advance in
one transaction. When that transaction starts the next stage, the child's next batch
is claimed in it too (:func:`geartrain.pipelines.hooks.finish_and_claim`). If the
database goes away, unwritten outcomes stay in memory and are written after the
connection comes back.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Sequence
from typing import Any

from django.db import Error as DatabaseError
from django.db import connections
from django.utils import timezone

from geartrain import compat, jobs
from geartrain.conf import Settings
from geartrain.exceptions import UnknownTask
from geartrain.models import Job, JobStatus
from geartrain.pipelines import errors, hooks, starts
from geartrain.queue import PROMOTE_BATCH, Claimed, SuccessAck, get_strategy
from geartrain.registry import registry
from geartrain.tasks import timeout as task_timeout
from geartrain.worker import outcomes, slots
from geartrain.worker.executor import Outcome, execute
from geartrain.worker.forking import unblock_stop_signals
from geartrain.worker.prefetch import Prefetch
from geartrain.worker.wake import Wake

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_RECYCLE = 3
SLOW_BATCH = 0.5  # seconds after which unstarted jobs of a batch are given back
TARGET_BATCH = 0.1  # seconds of work a batch aims for


class Child:
    """The loop of one worker child process."""

    def __init__(
        self,
        *,
        worker_id: str,
        queues: Sequence[str],
        slot: Any,
        conf: Settings,
        burst: bool = False,
        max_jobs: int | None = None,
        wake: Wake | None = None,
        parent_pid: int | None = None,
    ) -> None:
        self.worker_id = worker_id
        self.queues = list(queues)
        self.slot = slot
        self.conf = conf
        self.burst = burst
        self.max_jobs = max_jobs
        self.owner = f"{worker_id}/{os.getpid()}"
        # Given by the supervisor: a supervisor killed between the fork and this line
        # would make os.getppid() the orphan's new parent, and the child never exit.
        self.parent_pid = os.getppid() if parent_pid is None else parent_pid
        self.stopping = False
        self.done = 0
        self.batch = 1
        self.acks: list[SuccessAck] = []
        self.finishes: list[tuple[Job, dict[str, Any]]] = []
        self.step_errors: list[tuple[int, BaseException, dict[str, str]]] = []
        self.signals: list[tuple[Job, dict[str, Any]]] = []
        self.started_steps: set[int] = set()
        # Jobs claimed with the outcomes that started a stage (and their started
        # step runs): the next batch, run without a claim of its own.
        self.ahead: list[Job] = []
        self.ahead_steps: set[int] = set()
        self.needs_recovery = False
        self.next_promote = 0.0
        self.strategy = get_strategy(conf.DATABASE)
        self.wake = wake
        # Where the database wakes idle children itself (NOTIFY), siblings need not
        # poke each other: the pipe then only carries the supervisor's stop.
        self.siblings = None if self.strategy.supports_notify else wake
        self.prefetch = Prefetch(self.strategy, self.owner, SLOW_BATCH)

    def _on_term(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def run(self) -> int:
        """Serve until stopped, recycled, orphaned or (``--burst``) out of work."""
        signal.signal(signal.SIGTERM, self._on_term)
        # Ctrl-C reaches the whole process group; the supervisor decides for us.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        unblock_stop_signals()  # a SIGTERM sent while we were forked arrives now
        failures = 0
        try:
            while not self.stopping and not self._recycle_due():
                if os.getppid() != self.parent_pid:
                    logger.warning(
                        "Worker child owner=%s orphaned, exiting", self.owner
                    )
                    break
                try:
                    claimed = self._cycle()
                    failures = 0
                except DatabaseError:
                    failures += 1
                    self._on_database_error(failures)
                    continue
                if claimed == 0:
                    if self.burst:
                        break
                    self._wait()
            self._final_flush()
            self._give_back_ahead()
        finally:
            self.prefetch.close()
            self.strategy.close()
            connections.close_all()
        return EXIT_RECYCLE if self._recycle_due() else EXIT_OK

    def _wait(self) -> None:
        timeout = self.conf.POLL_INTERVAL
        if self.wake is None:
            self.strategy.wait_for_work(timeout)
        elif self.siblings is not None:
            self.siblings.wait(timeout)
        elif not self.strategy.wait_for_work(timeout, [self.wake.fileno()]):
            self.wake.take()  # woken by the pipe (a stop), not by a NOTIFY

    def _recycle_due(self) -> bool:
        return self.max_jobs is not None and self.done >= self.max_jobs

    def _on_database_error(self, failures: int) -> None:
        logger.warning(
            "Database error in worker child owner=%s attempt=%s; reconnecting",
            self.owner,
            failures,
            exc_info=True,
        )
        self.needs_recovery = True  # gives back self.ahead too
        self.ahead, self.ahead_steps = [], set()
        for conn in connections.all():
            conn.close_if_unusable_or_obsolete()
            try:
                conn.close()
            except DatabaseError:
                logger.debug("Closing a broken connection failed", exc_info=True)
        self.strategy.close()
        time.sleep(min(5.0, 0.1 * 2**failures))

    def _final_flush(self) -> None:
        for _ in range(50):
            try:
                self._flush()
                return
            except DatabaseError:
                logger.warning("Could not write outcomes on exit; retrying")
                connections.close_all()
                time.sleep(0.2)

    def _give_back_ahead(self) -> None:
        ahead, self.ahead, self.ahead_steps = self.ahead, [], set()
        if ahead:
            try:
                self.strategy.release(self.owner, [j.pk for j in ahead])
            except DatabaseError:
                logger.warning("Could not give back claimed jobs; their lease expires")

    def _cycle(self) -> int:
        # One connection for the child's life: reconnecting per cycle (what
        # close_old_connections() does with CONN_MAX_AGE = 0) costs more than a job.
        # A broken connection surfaces as a DatabaseError and is replaced then.
        self._flush()
        if self.ahead and not self.needs_recovery:
            batch, self.ahead = self.ahead, []
            self._run_batch(batch, self.ahead_steps)
            return len(batch)
        if self.needs_recovery:
            # Jobs claimed by a statement whose answer was lost: give them back.
            self.strategy.release(self.owner)
            self.needs_recovery = False
        now = time.monotonic()
        if now >= self.next_promote:
            full = self.strategy.promote_due() >= PROMOTE_BATCH
            # More may be due: promote again next cycle, after this one's claim.
            self.next_promote = now if full else now + self.conf.POLL_INTERVAL
        claimed = self._claim()
        if claimed.jobs:
            self._run_batch(claimed.jobs, claimed.started_steps)
        return len(claimed.jobs)

    def _claim(self) -> Claimed:
        limit = self.batch
        if self.max_jobs is not None:
            limit = max(1, min(limit, self.max_jobs - self.done))
        return self.strategy.claim_batch(
            self.queues, limit, self.owner, self.conf.LEASE_SECONDS
        )

    def _run_batch(
        self, batch: list[Job], started_steps: set[int] | None = None
    ) -> None:
        started = time.monotonic()
        ran = 0
        self.prefetch.load([j.pk for j in batch])
        # The batch's step runs are marked running in one statement (or were, with
        # the claim); a job whose step run is not in the set is checked on its own.
        if started_steps is None:
            started_steps = starts.steps_started(batch)
        self.started_steps = started_steps
        for index, job in enumerate(batch):
            late = index > 0 and time.monotonic() - started > SLOW_BATCH
            if self.stopping or late or self._recycle_due():
                break
            if not self.prefetch.start(job.pk):
                break  # given back by the watcher while the previous job ran
            try:
                self._run_one(job)
            finally:
                self.prefetch.finished()
            ran += 1
        left = self.prefetch.take_all()
        if left:
            self.strategy.release(self.owner, left)
        self.started_steps = set()
        self._flush()
        self._adapt(ran, time.monotonic() - started)

    def _adapt(self, ran: int, elapsed: float) -> None:
        if ran == 0:
            return
        per_job = elapsed / ran
        if per_job <= 0:
            wanted = self.conf.CLAIM_BATCH_SIZE
        else:
            wanted = int(TARGET_BATCH / per_job)
        self.batch = max(1, min(self.conf.CLAIM_BATCH_SIZE, wanted, self.batch * 2))

    def _run_one(self, job: Job) -> None:
        try:
            task = registry.get(job.task_path)
            limit = job.timeout or task_timeout(task)
            result = jobs.to_task_result(job, task)
        except UnknownTask:
            limit, result = None, None
        if (
            job.step_run_id is not None
            and job.step_run_id not in self.started_steps
            and not starts.step_started(job)
        ):
            # The step was skipped or cancelled after this job was claimed.
            now = timezone.now()
            fields = {"status": JobStatus.CANCELLED, "finished_at": now}
            self.finishes.append((job, fields))
            self.done += 1
            return
        slots.running(self.slot, job.pk, time.time() + limit if limit else 0.0)
        if result is not None:
            try:
                compat.task_started.send(
                    type(result.task.get_backend()), task_result=result
                )
            except Exception:
                logger.exception("A task_started receiver failed for job id=%s", job.pk)
        outcome = execute(job, result)
        slots.idle(self.slot)
        self.done += 1
        self._record(job, outcome)

    def _record(self, job: Job, outcome: Outcome) -> None:
        now = outcome.finished_at
        if outcome.kind == "succeeded":
            entry = outcomes.log_entry(job, self.owner, outcome.started_at, now)
            log = [*job.attempt_log, entry]
            fields: dict[str, Any] = {
                "status": JobStatus.SUCCEEDED,
                "finished_at": now,
                "return_value": outcome.return_value,
                "attempt_log": log,
            }
            if job.step_run_id is None:
                self.acks.append(SuccessAck(job.pk, now, outcome.return_value, log))
            else:
                # A step's outcome advances its run in the same transaction.
                self.finishes.append((job, fields))
        elif outcome.kind == "postpone":
            fields = outcomes.after_postpone(
                job, outcome.postpone_seconds, self.owner, now
            )
            self.finishes.append((job, fields))
        else:
            entry = outcomes.log_entry(
                job,
                self.owner,
                outcome.started_at,
                now,
                error_class=outcome.error_class,
                message=outcome.message,
                traceback=outcome.traceback,
            )
            fields = outcomes.after_error(job, entry, outcome.error, now)
            self.finishes.append((job, fields))
            if job.step_run_id is not None and fields["status"] == JobStatus.FAILED:
                details = {
                    "error_class": outcome.error_class,
                    "message": outcome.message,
                    "traceback": outcome.traceback,
                }
                error = outcome.error or RuntimeError(outcome.message)
                self.step_errors.append((job.step_run_id, error, details))
        if outcomes.django_status(fields) is not None:
            self.signals.append((job, fields))

    def _flush(self) -> None:
        if self.acks:
            self.strategy.ack_successes(self.owner, self.acks)
            self.acks = []
        if self.finishes:
            # One transaction for the batch's outcomes (and their pipeline advances).
            busy = self.ahead or self.stopping or self._recycle_due()
            claim = None if busy else self._claim
            written = hooks.finish_and_claim(
                self.strategy, self.owner, self.finishes, claim
            )
            for job_id in written.discarded:
                logger.warning(
                    "Outcome of job id=%s discarded: its lease was taken away", job_id
                )
            self.finishes = []
            self.ahead, self.ahead_steps = written.claimed, written.started_steps
            if written.started and self.siblings is not None:
                self.siblings.poke()  # the new stage is theirs too
        step_errors, self.step_errors = self.step_errors, []
        for step_run_id, error, details in step_errors:
            errors.handle(step_run_id, error, details)
        signals, self.signals = self.signals, []
        for job, fields in signals:
            outcomes.send_finished(job, fields)


__all__ = ["EXIT_OK", "EXIT_RECYCLE", "Child"]
