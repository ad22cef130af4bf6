"""Injectable time source, so windows, quiet hours and expiry are testable without sleeping."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Current time, epoch milliseconds UTC."""
        ...


class SystemClock:
    """Wall clock."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class ManualClock:
    """A clock that only moves when told to (tests, replays)."""

    def __init__(self, start_ms: int = 0) -> None:
        self._now = int(start_ms)

    def now_ms(self) -> int:
        return self._now

    def set(self, now_ms: int) -> None:
        self._now = int(now_ms)

    def advance(self, *, ms: int = 0, s: float = 0, minutes: float = 0, hours: float = 0) -> int:
        """Move forward (never backward) and return the new time."""
        delta = ms + round((s + minutes * 60 + hours * 3600) * 1000)
        if delta < 0:
            raise ValueError("ManualClock.advance cannot go backwards; use set()")
        self._now += delta
        return self._now
