"""A circuit breaker per model: after repeated failures its calls are skipped for a cool-down.

Closed, it lets every call through and counts failures in a row. At ``failures`` in a row it
opens: calls are refused (the turn goes straight to its fallback model or its degraded path)
until ``cooldown_s`` has passed. Then one call goes through as a probe (half-open): if it
answers, the breaker closes; if it fails, the breaker opens for another cool-down.

A few dozen lines of state, not a library: the Python circuit breakers (pybreaker, aiobreaker)
wrap a call themselves, while a model call here must also be skipped, retried and timed against
the turn's deadline by its caller (``llm.routing``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerPolicy:
    # Failures in a row that open the breaker (0: never open).
    failures: int = 3
    # How long an open breaker refuses calls before it lets one probe through.
    cooldown_s: float = 30.0


class CircuitBreaker:
    """One model's breaker. Not thread-safe: one event loop uses it."""

    def __init__(
        self, policy: BreakerPolicy, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.policy = policy
        self._clock = clock
        self.state = BreakerState.CLOSED
        # Failures in a row (reset by a success).
        self.failures = 0
        self._opened_at = 0.0
        self._probing = False

    def allow(self) -> bool:
        """Whether a call may go through now; a half-open breaker lets one probe at a time."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN:
            if self.retry_in() > 0:
                return False
            self.state = BreakerState.HALF_OPEN
        if self._probing:
            return False
        self._probing = True
        return True

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when it would now)."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.policy.cooldown_s - self._clock())

    def succeeded(self) -> bool:
        """Record an answer; True when it ends a failing streak (the model recovered)."""
        recovered = self.failures > 0 or self.state is not BreakerState.CLOSED
        self.state = BreakerState.CLOSED
        self.failures = 0
        self._probing = False
        return recovered

    def failed(self) -> bool:
        """Record a failure; True when it opens the breaker."""
        self.failures += 1
        probe_failed = self.state is BreakerState.HALF_OPEN
        self._probing = False
        limit = self.policy.failures
        if probe_failed or (limit > 0 and self.failures >= limit):
            opens = self.state is not BreakerState.OPEN
            self.state = BreakerState.OPEN
            self._opened_at = self._clock()
            return opens
        return False

    def abandoned(self) -> None:
        """A call let through ended without an answer or a failure (it was cancelled)."""
        self._probing = False
