"""PostgreSQL LISTEN on one channel, over its own autocommit connection.

A :class:`Listener` sleeps until a notification arrives on its channel, one of the
caller's own file descriptors becomes readable (a signal's wake-up pipe) or a timeout
passes. It waits on the connection's socket with ``select`` rather than
``Connection.notifies()``, so that a connection the server dropped (a restart) shows
up as readable at once and fails the follow-up query instead of blocking. The
notifications that made the socket readable are read from it without a query: a
wake-up costs no round trip (a worker's is on the path from one pipeline stage to the
next).

Relies on PostgreSQL's LISTEN/NOTIFY (any supported version) and psycopg 3's
notification handlers. A notification sent while the connection was down is lost, so
:meth:`Listener.wait` reports a reconnection like a notification: the caller re-reads
whatever it was waiting for.
"""

from __future__ import annotations

import logging
import select
from collections.abc import Sequence
from typing import Any

from django.db import connections

logger = logging.getLogger(__name__)

CONNECTION_OK = 0  # libpq's CONNECTION_OK (psycopg.pq.ConnStatus.OK)
RETRY_SECONDS = 1.0
"""Longest wait between two attempts to reconnect a failed LISTEN connection."""


class Listener:
    """``LISTEN channel`` on a dedicated connection to database ``alias``."""

    def __init__(self, alias: str, channel: str) -> None:
        if not channel.isidentifier():
            raise ValueError(f"{channel!r} is not a plain identifier; use one.")
        self.alias = alias
        self.channel = channel
        self._wrapper: Any = None
        self._notified = False

    @property
    def connected(self) -> bool:
        return self._wrapper is not None

    def connect(self) -> None:
        """Open the connection and LISTEN (no-op when connected); raises on failure."""
        if self._wrapper is not None:
            return
        wrapper = connections.create_connection(self.alias)
        try:
            wrapper.ensure_connection()
            raw = wrapper.connection
            raw.autocommit = True
            raw.add_notify_handler(self._on_notify)
            raw.execute(f"LISTEN {self.channel}")
        except Exception:
            _close_quietly(wrapper)
            raise
        self._wrapper = wrapper
        self._notified = False

    def _on_notify(self, notify: Any) -> None:
        self._notified = True

    def wait(self, timeout: float, wake: Sequence[int] = ()) -> bool:
        """Sleep up to ``timeout`` seconds; True when notified (or maybe missed one).

        Returns early, with False, when a descriptor in ``wake`` is readable; the
        caller reads it. Returns True at once after (re)connecting, since
        notifications sent while it was not listening are lost; when the connection
        cannot be made, waits at most :data:`RETRY_SECONDS` and returns True.
        """
        if self._wrapper is None:
            try:
                self.connect()
            except Exception:
                logger.warning(
                    "LISTEN %s: cannot connect; polling until it is back", self.channel
                )
                _sleep(min(timeout, RETRY_SECONDS), wake)
                return True
            return True
        if not self._notified and timeout > 0:
            self._select(timeout, wake)
        notified, self._notified = self._notified, False
        return notified or self._wrapper is None

    def _select(self, timeout: float, wake: Sequence[int]) -> None:
        try:
            raw = self._wrapper.connection
            sock = raw.pgconn.socket
            readable, _, _ = select.select([sock, *wake], [], [], timeout)
            if sock in readable and _drain(raw):
                self._notified = True
        except Exception:
            logger.warning(
                "LISTEN %s connection failed; reconnecting", self.channel, exc_info=True
            )
            self.close()

    def close(self) -> None:
        """Close the connection (the next :meth:`wait` reconnects)."""
        if self._wrapper is not None:
            _close_quietly(self._wrapper)
            self._wrapper = None


def _drain(raw: Any) -> bool:
    """Read the notifications waiting on the socket; whether there were any.

    Anything else on the socket (an error, the server closing the connection) gets a
    query, which raises if the connection is gone.
    """
    pgconn = raw.pgconn
    pgconn.consume_input()
    notified = False
    while pgconn.notifies() is not None:
        notified = True
    if not notified or pgconn.status != CONNECTION_OK:
        raw.execute("SELECT 1")  # runs the handlers too; raises if the server left
    return notified


def _close_quietly(wrapper: Any) -> None:
    try:
        wrapper.close()
    except Exception:
        logger.debug("Closing a LISTEN connection failed", exc_info=True)


def _sleep(seconds: float, wake: Sequence[int]) -> None:
    if seconds > 0:
        select.select(list(wake), [], [], seconds)


def listener_for(alias: str, channel: str) -> Listener | None:
    """A listener on ``channel`` when database ``alias`` is PostgreSQL, else None."""
    if connections[alias].vendor != "postgresql":
        return None
    return Listener(alias, channel)
