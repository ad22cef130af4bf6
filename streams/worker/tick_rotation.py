"""Which partition the next tick goes to: one partition at a time, spread over the interval.

Ticking every owned partition at once, once per interval, would flush every partition's due
digests in the same few hundred milliseconds: in the benchmark at half the maximum rate that held
the router's events up to ~200 ms once a second, and made its p99. So a timer fires
``partitions`` times per interval and each firing may tick one owned partition, in turn: a
worker that owns k of n partitions ticks on k of every n firings, so each of its partitions is
ticked once per interval, as configured, and the flushes are spread across it.
"""

from __future__ import annotations

from collections.abc import Sequence


class TickRotation:
    def __init__(self, partitions: int) -> None:
        self._partitions = partitions  # firings per tick interval
        self._credit = 0  # owned-partition ticks earned by past firings, in 1/partitions units
        self._turn = -1

    def next(self, owned: Sequence[int]) -> int | None:
        """Called once per firing: the partition to tick now, or None. ``owned`` sorted."""
        if not owned:
            return None
        self._credit += len(owned)
        if self._credit < self._partitions:
            return None
        self._credit -= self._partitions
        self._turn = (self._turn + 1) % len(owned)
        return owned[self._turn]
