"""Clocks: the emulator asks one for "now" so tests can move time forward."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ManualClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Anything with a ``now()`` returning an aware UTC datetime."""

    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        """The current UTC time."""
        return datetime.now(UTC)


class ManualClock:
    """A clock that follows the wall clock plus an offset the caller can grow.

    ``advance(minutes=15)`` makes auto-stop, auto-archive, auto-delete and ttl deadlines
    fifteen minutes closer at once. Thread-safe, so a test can advance it while the
    emulator runs in another thread.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._offset = timedelta(0)
        self._start = start

    def now(self) -> datetime:
        """Wall-clock time (or the fixed start) plus everything advanced so far."""
        with self._lock:
            base = self._start if self._start is not None else datetime.now(UTC)
            return base + self._offset

    def advance(self, seconds: float = 0.0, *, minutes: float = 0.0) -> None:
        """Move the clock forward; negative amounts are rejected."""
        delta = timedelta(seconds=seconds, minutes=minutes)
        if delta < timedelta(0):
            raise ValueError("a clock only moves forward; got a negative amount")
        with self._lock:
            self._offset += delta
