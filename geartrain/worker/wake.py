"""Waking a worker's idle children when one of them has made work ready.

On PostgreSQL a child waits on ``LISTEN`` and wakes as soon as jobs are inserted. The
other vendors have nothing like it, so an idle child sleeps ``POLL_INTERVAL`` between
two looks: too long for work that a sibling has just made ready, such as a pipeline
stage started by the sibling's outcomes (its jobs are inserted in that transaction),
which the sibling would otherwise run alone.

The supervisor opens one pipe before it forks its children. An idle child waits on the
read end; a child whose outcomes started a stage writes one byte per sibling after the
commit, and the supervisor writes one per child when it stops (idle children see the
stop at once). A byte nobody was waiting for only makes a later wait return at once:
one claim that may find nothing. Work made ready by other processes (a web request's
enqueue) is still found by polling. On PostgreSQL, where ``NOTIFY`` wakes idle children,
the pipe only carries the supervisor's stop: a child waits on both.
"""

from __future__ import annotations

import contextlib
import os
import select


class Wake:
    """A pipe shared by the children of one worker (inherited through ``fork``)."""

    def __init__(self, siblings: int) -> None:
        self.siblings = max(0, siblings)
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)

    def fileno(self) -> int:
        """The read end, for a caller that waits on other descriptors too."""
        return self._read

    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds or until poked; whether it was poked."""
        ready, _, _ = select.select([self._read], [], [], max(0.0, timeout))
        if not ready:
            return False
        self.take()
        return True

    def take(self) -> None:
        """Consume one poke, if one is waiting (never blocks)."""
        with contextlib.suppress(BlockingIOError):  # none, or a sibling took it
            os.read(self._read, 1)

    def poke(self, count: int | None = None) -> None:
        """Wake ``count`` idle children, by default the siblings of the caller.

        Never blocks: a full pipe wakes them already.
        """
        count = self.siblings if count is None else count
        if count > 0:
            with contextlib.suppress(BlockingIOError):
                os.write(self._write, b"\0" * count)

    def close(self) -> None:
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)
