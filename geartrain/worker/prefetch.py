"""The claimed-but-unstarted jobs of a worker child, and their watcher.

A child claims several short jobs at once. If the job it is running turns out to be
slow, the jobs waiting behind it should not wait with it: a watcher thread gives them
back to the queue once the current job has run for ``SLOW_BATCH`` seconds, so other
children can run them. A lock makes "start the next job" (main thread) and "give the
waiting jobs back" (watcher) exclusive, so a job is either started here or released,
never both.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from django.db import Error as DatabaseError
from django.db import connections

from geartrain.queue import ClaimStrategy

logger = logging.getLogger(__name__)


class Prefetch:
    """Job ids claimed by one child and not started yet."""

    def __init__(
        self, strategy: ClaimStrategy, owner: str, slow_after: float, tick: float = 0.1
    ) -> None:
        self.strategy = strategy
        self.owner = owner
        self.slow_after = slow_after
        self.tick = tick
        self._lock = threading.Lock()
        self._waiting: list[int] = []
        self._running_since = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def load(self, job_ids: Sequence[int]) -> None:
        """Remember a freshly claimed batch (none started yet)."""
        with self._lock:
            self._waiting = list(job_ids)
            self._running_since = 0.0
        if len(job_ids) > 1:
            self._ensure_watcher()

    def start(self, job_id: int) -> bool:
        """Take ``job_id`` to run now; False if the watcher gave it back already."""
        with self._lock:
            if job_id not in self._waiting:
                return False
            self._waiting.remove(job_id)
            self._running_since = time.monotonic()
            return True

    def finished(self) -> None:
        """The current job ended."""
        with self._lock:
            self._running_since = 0.0

    def take_all(self) -> list[int]:
        """Remove and return every waiting id (the caller releases them)."""
        with self._lock:
            waiting, self._waiting = self._waiting, []
            return waiting

    def close(self) -> None:
        """Stop the watcher thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _ensure_watcher(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._watch, name="geartrain-prefetch", daemon=True
            )
            self._thread.start()

    def _watch(self) -> None:
        try:
            while not self._stop.wait(self.tick):
                self._release_if_slow()
        finally:
            connections.close_all()

    def _release_if_slow(self) -> None:
        with self._lock:
            since = self._running_since
            if not self._waiting or not since:
                return
            if time.monotonic() - since < self.slow_after:
                return
            try:
                # Holding the lock: the main thread cannot start one of these now.
                self.strategy.release(self.owner, list(self._waiting))
            except DatabaseError:
                logger.warning("Could not give back waiting jobs; will retry")
                connections.close_all()
                return
            logger.info(
                "Gave back %s waiting jobs behind a slow job owner=%s",
                len(self._waiting),
                self.owner,
            )
            self._waiting = []
