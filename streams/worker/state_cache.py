"""Decoded router states of the users seen last, so a batch does not decode JSON it decoded a
moment ago.

Decoding a user's state (a RocksDB read, JSON, objects) was the largest single cost of a batch in
the worker's profile, and notification traffic comes in bursts per user: the same users recur
from batch to batch. The table stays the truth. The router mutates a cached state in place and
writes it back at the end of its batch; whoever may leave a cached state different from the
stored one (a failed batch, a flush whose digests the broker did not take, a rebalance) drops it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from streams.core.routing.state import UserState

# Decoded objects per byte of the state's JSON (tracemalloc over 1,000-2,000 states each): 1.0-1.8
# for states of 5-200 seen ids alone (they are one string), 2.1-2.8 with throttle windows and
# holds (the digest items are objects). With the seen ids as a dict of lists it was 3.7-4.2.
OBJECT_BYTES_PER_JSON_BYTE = 3


class StateCache:
    """Least-recently-used, bounded by ``max_users`` entries and by ``max_bytes`` of estimated
    memory (3× the JSON the states were last read or written as); 0 users disables it, 0 bytes
    leaves only the count.

    The byte bound is what keeps memory flat over a long run: a user's state grows with every
    event remembered for dedupe (24 h by default), so a cache bounded by count alone keeps
    growing while its users do."""

    def __init__(self, max_users: int, max_bytes: int = 0) -> None:
        self.max_users = max_users
        self._max_json = max_bytes // OBJECT_BYTES_PER_JSON_BYTE if max_bytes > 0 else 0
        # Least recently used first. An OrderedDict, not a dict: evicting from the front of a
        # dict leaves holes that every later ``next(iter())`` walks over (a micro-benchmark, 20,000
        # of 100,000 users: 8.6-11.7 µs per operation, against 1.1-1.3 µs).
        self._states: OrderedDict[bytes, UserState] = OrderedDict()
        self._json_sizes: dict[bytes, int] = {}
        self._json_bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._states)

    @property
    def estimated_bytes(self) -> int:
        return self._json_bytes * OBJECT_BYTES_PER_JSON_BYTE

    def get(self, key: bytes) -> UserState | None:
        state = self._states.get(key)
        if state is None:
            self.misses += 1
            return None
        self._states.move_to_end(key)  # now the most recently used
        self.hits += 1
        return state

    def put(self, key: bytes, state: UserState, json_size: int) -> None:
        """Cache ``state``, whose stored JSON is ``json_size`` bytes."""
        self._forget(key)
        if self.max_users <= 0 or self._too_big(json_size):
            return
        self._states[key] = state
        self._json_sizes[key] = json_size
        self._json_bytes += json_size
        self._evict()

    def resize(self, key: bytes, json_size: int) -> None:
        """The cached state of ``key`` was just stored as ``json_size`` bytes of JSON."""
        old = self._json_sizes.get(key)
        if old is None:
            return
        if self._too_big(json_size):
            self._forget(key)
            return
        self._json_sizes[key] = json_size
        self._json_bytes += json_size - old
        if json_size > old:
            self._evict()

    def discard(self, keys: Iterable[bytes]) -> None:
        for key in keys:
            self._forget(key)

    def clear(self) -> None:
        self._states.clear()
        self._json_sizes.clear()
        self._json_bytes = 0

    def _forget(self, key: bytes) -> None:
        if self._states.pop(key, None) is not None:
            self._json_bytes -= self._json_sizes.pop(key)

    def _too_big(self, json_size: int) -> bool:
        """A state over the whole budget is not cached rather than emptying the cache for it."""
        return bool(self._max_json) and json_size > self._max_json

    def _evict(self) -> None:
        max_json = self._max_json
        while len(self._states) > self.max_users or (max_json and self._json_bytes > max_json):
            key, _ = self._states.popitem(last=False)
            self._json_bytes -= self._json_sizes.pop(key)
