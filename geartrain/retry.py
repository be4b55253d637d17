"""Retry and postpone arithmetic: pure, no database.

An *attempt* is one try of a job. A job with ``max_attempts=3`` runs at most three
times;
errors listed in ``retry_on``, lost workers and timeouts use attempts up. Postpones
(``raise Postpone(s)``) are counted apart and never touch the attempt count.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from typing import Literal

Backoff = Literal["constant", "incremental", "exponential"]
BACKOFFS: tuple[Backoff, ...] = ("constant", "incremental", "exponential")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How often and how soon a failed job runs again."""

    max_attempts: int = 3
    """Total attempts, the first one included (1 means never retry)."""
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    """Exception classes (and their subclasses) that are retried."""
    backoff: Backoff = "exponential"
    """``constant``: d; ``incremental``: d * n; ``exponential``: d * 2 ** (n - 1)."""
    delay: float = 2.0
    """Base delay in seconds."""
    max_delay: float = 300.0
    """Cap of the computed delay in seconds."""
    jitter: bool = True
    """Draw the delay between half and all of the computed value."""

    def __post_init__(self) -> None:
        for problem in self.problems():
            raise ValueError(problem)

    def problems(self) -> list[str]:
        """Rule violations of this policy, one sentence each."""
        found = []
        if isinstance(self.max_attempts, bool) or not isinstance(
            self.max_attempts, int
        ):
            found.append(f"max_attempts {self.max_attempts!r} is not a whole number.")
        elif self.max_attempts < 1:
            found.append(
                f"max_attempts is {self.max_attempts!r}; it must be 1 or more "
                f"(1 means the job is never retried)."
            )
        if self.backoff not in BACKOFFS:
            found.append(
                f"backoff is {self.backoff!r}; it must be one of {', '.join(BACKOFFS)}."
            )
        if self.delay < 0:
            found.append(f"retry_delay is {self.delay!r}; it must be 0 or greater.")
        if self.max_delay < self.delay:
            found.append(
                f"retry_delay {self.delay!r} is larger than its cap max_retry_delay "
                f"{self.max_delay!r}. Lower retry_delay or raise max_retry_delay "
                f"(GEARTRAIN['MAX_RETRY_DELAY'] by default)."
            )
        for cls in self.retry_on:
            if not (isinstance(cls, type) and issubclass(cls, BaseException)):
                found.append(
                    f"retry_on contains {cls!r}, which is not an exception class."
                )
        return found

    def retries(
        self, error: BaseException | type[BaseException] | None, attempt: int
    ) -> bool:
        """Whether attempt number ``attempt`` (1-based) that failed runs again.

        ``error=None`` stands for a lost worker or a timeout: those retry whenever
        attempts remain, whatever ``retry_on`` says.
        """
        if attempt >= self.max_attempts:
            return False
        if error is None:
            return True
        cls = error if isinstance(error, type) else type(error)
        return issubclass(cls, self.retry_on)

    def delay_for(
        self, attempt: int, rand: Callable[[], float] = random.random
    ) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        n = max(1, attempt)
        if self.backoff == "constant":
            base = self.delay
        elif self.backoff == "incremental":
            base = self.delay * n
        else:
            # Cap the exponent so huge attempt numbers cannot overflow a float.
            base = self.delay * 2.0 ** min(n - 1, 64)
        base = min(base, self.max_delay)
        if self.jitter:
            return base / 2 + rand() * base / 2
        return base


def postpone_allowed(postpones_so_far: int, limit: int | None) -> bool:
    """Whether one more postpone fits under ``limit`` (``None`` = unlimited)."""
    return limit is None or postpones_so_far < limit
