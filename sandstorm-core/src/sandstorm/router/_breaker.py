"""A circuit breaker per member: closed, open after N consecutive failures, half-open."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum

from .._errors import (
    ProviderAPIError,
    ProviderUnavailable,
    QuotaExceeded,
    RateLimited,
)

__all__ = ["BreakerState", "CircuitBreaker", "counts_against"]


class BreakerState(StrEnum):
    """Where a member's breaker is."""

    CLOSED = "closed"
    """Calls go to the member."""
    OPEN = "open"
    """The member failed repeatedly: calls skip it until ``reset_after`` has passed."""
    HALF_OPEN = "half_open"
    """The cool-down is over: the next call first probes ``is_available``."""


def counts_against(error: BaseException) -> bool:
    """True for the failures that say a member is unhealthy (unavailable, network, 5xx)."""
    if isinstance(error, ProviderUnavailable):
        return True
    return isinstance(error, ProviderAPIError) and (error.status or 0) >= 500


class CircuitBreaker:
    """Health of one member, from the outcomes of the calls routed to it."""

    def __init__(
        self,
        failures: int = 3,
        reset_after: float = 10.0,
        quota_cooldown: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = failures
        self.reset_after = reset_after
        self.quota_cooldown = quota_cooldown
        self._clock = clock
        self.consecutive = 0
        self.opened_at: float | None = None
        self.blocked_until = 0.0
        self.blocked_why: str | None = None
        self.opens = 0
        self.closes = 0

    @property
    def state(self) -> BreakerState:
        """The breaker's state now."""
        if self.opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self.opened_at >= self.reset_after:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def blocked(self) -> str | None:
        """Why the member must be skipped now (rate limit, quota, open breaker), else ``None``."""
        now = self._clock()
        if now < self.blocked_until:
            return f"{self.blocked_why} (for {self.blocked_until - now:.1f}s more)"
        if self.state is BreakerState.OPEN:
            assert self.opened_at is not None
            left = self.reset_after - (now - self.opened_at)
            return f"circuit open after {self.consecutive} failures (probe in {left:.1f}s)"
        return None

    def succeeded(self) -> None:
        """A call (or a half-open probe) worked: close the breaker."""
        if self.opened_at is not None:
            self.closes += 1
        self.consecutive = 0
        self.opened_at = None

    def failed(self, error: BaseException) -> None:
        """Record a failed call; only health failures move the breaker."""
        now = self._clock()
        if isinstance(error, RateLimited):
            wait = error.retry_after if error.retry_after is not None else 1.0
            self.blocked_until = max(self.blocked_until, now + wait)
            self.blocked_why = "rate limited"
            return
        if isinstance(error, QuotaExceeded):
            self.blocked_until = max(self.blocked_until, now + self.quota_cooldown)
            self.blocked_why = "quota exceeded"
            return
        if not counts_against(error):
            return
        self.consecutive += 1
        if self.opened_at is not None:  # a half-open trial failed: open again
            self.opened_at = now
        elif self.consecutive >= self.threshold:
            self.opened_at = now
            self.opens += 1

    def probe_failed(self) -> None:
        """A half-open probe said the member is still down: stay open another cool-down."""
        self.opened_at = self._clock()
