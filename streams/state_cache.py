"""Decoded router states of the users seen last, so a batch does not decode JSON it decoded a
moment ago.

Decoding a user's state (a RocksDB read, JSON, objects) was the largest single cost of a batch in
the worker's profile, and notification traffic comes in bursts per user: the same users recur
from batch to batch. The table stays the truth. The router mutates a cached state in place and
writes it back at the end of its batch; whoever may leave a cached state different from the
stored one (a failed batch, a flush whose digests the broker did not take, a rebalance) drops it.
"""

from __future__ import annotations

from collections.abc import Iterable

from .routing.state import UserState


class StateCache:
    """Least-recently-used, at most ``max_users`` entries; 0 disables it.

    A decoded state takes about 4× its JSON size (measured: 3.7 KB of JSON, 14 KB of objects for
    a user with 16 pending events; 620 B of JSON is typical after 10 events): 20,000 users take
    ~50 MB to ~300 MB."""

    def __init__(self, max_users: int) -> None:
        self.max_users = max_users
        self._states: dict[bytes, UserState] = {}  # least recently used first
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._states)

    def get(self, key: bytes) -> UserState | None:
        state = self._states.pop(key, None)
        if state is None:
            self.misses += 1
            return None
        self._states[key] = state  # now the most recently used
        self.hits += 1
        return state

    def put(self, key: bytes, state: UserState) -> None:
        if self.max_users <= 0:
            return
        self._states.pop(key, None)
        self._states[key] = state
        if len(self._states) > self.max_users:
            del self._states[next(iter(self._states))]

    def discard(self, keys: Iterable[bytes]) -> None:
        for key in keys:
            self._states.pop(key, None)

    def clear(self) -> None:
        self._states.clear()
