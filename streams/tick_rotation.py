"""Which partition the next tick goes to: one partition per timer firing, in turn.

Ticks used to go to every owned partition at once, once per interval, so every partition's due
digests were flushed in the same few hundred milliseconds. In the benchmark at half the maximum
rate those flushes held the router's events up to ~200 ms once a second, and made its p99. Sent
in turn, from a timer firing ``partitions`` times per interval, the same work is spread over the
interval; a worker that owns k of n partitions ticks each of them every k/n of the interval,
never less often than configured.
"""

from __future__ import annotations

from collections.abc import Sequence


class TickRotation:
    def __init__(self) -> None:
        self._turn = -1

    def next(self, owned: Sequence[int]) -> int | None:
        """The partition to tick now (None when none is owned); ``owned`` sorted."""
        if not owned:
            return None
        self._turn = (self._turn + 1) % len(owned)
        return owned[self._turn]
