"""Is the router making progress? What `/health` reports, so a wedged worker is not taken for a
live one (a process that answers `/counters` may still route nothing).

- ``ok``: routing, or nothing to route.
- ``waiting``: a dependency is away and the router waits for it on purpose (the schema registry,
  ``schema_wait.py``); the reason and for how long.
- ``stalled``: one batch has been routed for longer than ``stall_after_s``, or a batch failed:
  Faust restarts a failed agent, but the failed batch's events are never acknowledged, so their
  partitions' offsets cannot be committed again until the worker restarts.

``queued`` (events fetched, not yet taken) and the time since the last routed batch are shown as
they are: a queue only fills while a batch is under way, so they explain a stall, not define one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol


class Sized(Protocol):
    def qsize(self) -> int: ...


class RouterProgress:
    def __init__(self, stall_after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_after_s, self._clock = stall_after_s, clock
        self.routed = 0
        self._last_progress = clock()
        self._busy_since: float | None = None
        self._waiting: tuple[str, float] | None = None  # (reason, since)
        self._failed: tuple[str, float] | None = None  # (error, when)
        self._queue: Sized | None = None

    def watch(self, queue: Sized) -> None:
        """The router stream's queue: events fetched and not yet taken."""
        self._queue = queue

    def batch_started(self) -> None:
        self._busy_since = self._clock()

    def batch_done(self, events: int) -> None:
        self._busy_since = None
        self._last_progress = self._clock()
        self.routed += events

    def batch_failed(self, error: BaseException) -> None:
        self._busy_since = None
        self._failed = (f"{type(error).__name__}: {error}", self._clock())

    def waiting(self, reason: str) -> None:
        since = self._waiting[1] if self._waiting else self._clock()
        self._waiting = (reason, since)

    def waiting_over(self) -> None:
        self._waiting = None
        self._last_progress = self._clock()

    def report(self) -> dict[str, Any]:
        now = self._clock()
        queued = self._queue.qsize() if self._queue is not None else 0
        idle_s = now - self._last_progress
        busy_s = now - self._busy_since if self._busy_since is not None else 0.0
        state, reason = "ok", ""
        if self._failed is not None:
            error, when = self._failed
            state = "stalled"
            reason = (f"a batch failed {now - when:.0f}s ago ({error}); its events stay unacknowledged "
                      "and their partitions' offsets cannot be committed: restart the worker")
        elif self._waiting is not None:
            why, since = self._waiting
            state, reason = "waiting", f"{why} (waiting for {now - since:.0f}s)"
        elif busy_s > self.stall_after_s:
            state = "stalled"
            reason = f"one batch has been routed for {busy_s:.0f}s; {queued} events wait behind it"
        return {"state": state, "reason": reason, "routed": self.routed, "queued": queued,
                "since_progress_s": round(idle_s, 1), "batch_running_s": round(busy_s, 1)}
