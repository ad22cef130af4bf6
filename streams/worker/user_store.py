"""Each user's routing state and preferences, as the worker reads and writes them.

Two changelogged RocksDB tables are the truth: ``users`` (dedupe memory, throttle windows, pending
holds and fallbacks: one record per user, so one changelog write per change is atomic) and
``preferences``.
Values are JSON made by orjson, handed to Faust as raw bytes. In front of them: decoded states of
recent users (``StateCache``), decoded preferences, and the index of when holds fall due, all
derived and dropped whenever they may disagree with the tables (a rebalance, a failed batch).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Protocol

import orjson

from streams.core.model import Preferences
from streams.core.routing.router import next_due_ms
from streams.core.routing.state import UserState
from streams.core.routing.validation import decode_preferences
from streams.worker.due_index import DueIndex
from streams.worker.state_cache import StateCache

log = logging.getLogger("notipipe.worker")


class RawTable(Protocol):
    """What the store needs of a Faust table keyed and valued by bytes (``faust_ext``'s tables)."""

    def get_raw(self, partition: int, key: bytes) -> bytes | None: ...

    def set_raw(self, partition: int, key: bytes, value: bytes) -> None: ...

    def __contains__(self, key: object) -> bool: ...

    def __setitem__(self, key: bytes, value: bytes) -> None: ...

    def __delitem__(self, key: bytes) -> None: ...

    def items(self) -> Iterable[tuple[bytes, bytes]]: ...


class UserStore:
    def __init__(self, users: RawTable, preferences: RawTable, states: StateCache,
                 prefs_cache_users: int) -> None:
        self.users, self.preferences, self.states = users, preferences, states
        self.due = DueIndex()
        self._prefs_cache: dict[bytes, Preferences | None] = {}
        self._prefs_cache_users = prefs_cache_users
        self._index_stale = True

    # -- preferences -------------------------------------------------------------------------
    def prefs(self, partition: int, key: bytes) -> Preferences | None:
        """Decoded preferences, cached: decoding them per event would cost more than routing."""
        cache = self._prefs_cache
        if key in cache:  # None is cached too: a user without preferences
            return cache[key]
        raw = self.preferences.get_raw(partition, key)
        prefs = decode_preferences(orjson.loads(raw)) if raw else None
        if self._prefs_cache_users:
            if len(cache) >= self._prefs_cache_users:
                cache.clear()  # crude, but O(1) per event and bounded
            cache[key] = prefs
        return prefs

    def store_prefs(self, key: bytes, record: dict) -> None:
        """A new snapshot (written through Faust, to the current event's partition)."""
        self.preferences[key] = orjson.dumps(record)
        self._prefs_cache.pop(key, None)

    def reset_prefs(self, key: bytes) -> None:
        """A tombstone: the user is back to the defaults."""
        if key in self.preferences:
            del self.preferences[key]
        self._prefs_cache.pop(key, None)

    # -- routing state -----------------------------------------------------------------------
    def load(self, partition: int, key: bytes) -> UserState:
        state = self.states.get(key)
        if state is None:
            raw = self.users.get_raw(partition, key)
            state = UserState.from_dict(orjson.loads(raw) if raw else None)
            self.states.put(key, state, len(raw) if raw else 0)
        return state

    def save(self, partition: int, key: bytes, state: UserState) -> None:
        if state.is_empty():
            self.states.resize(key, 0)
            if key in self.users:
                del self.users[key]
            return
        data = state.to_dict()
        data["p"] = partition  # lets the due index be rebuilt per partition from a scan
        value = orjson.dumps(data)
        self.states.resize(key, len(value))
        self.users.set_raw(partition, key, value)

    def discard(self, keys: Iterable[bytes]) -> None:
        """Forget decoded states that may differ from the stored ones (read them again)."""
        self.states.discard(keys)

    # -- when holds and fallbacks fall due ---------------------------------------------------
    def schedule(self, partition: int, key: bytes, state: UserState) -> None:
        self.due.set(partition, key, next_due_ms(state))

    def retry_now(self, partition: int, key: bytes, now_ms: int) -> None:
        self.due.set(partition, key, now_ms)

    def due_users(self, partition: int, now_ms: int, limit: int) -> list[bytes]:
        """Users of the partition with holds due now, at most ``limit``, taken off the index."""
        if self._index_stale:
            self._rebuild_due_index()
        return self.due.pop_due(partition, now_ms, limit=limit)

    def _rebuild_due_index(self) -> None:
        # A full scan, once per rebalance: the index is derived data, the table is the truth.
        self.due.clear()
        for key, value in self._stored_states():
            if value.get("holds") or value.get("fallbacks"):
                self.due.set(value["p"], key, next_due_ms(UserState.from_dict(value)))
        self._index_stale = False
        log.info("due index rebuilt: %d users with pending holds or fallbacks", len(self.due))

    def _stored_states(self) -> Iterator[tuple[bytes, dict]]:
        for key, raw in self.users.items():
            yield key, orjson.loads(raw)

    # -- rebalances --------------------------------------------------------------------------
    def on_partitions_assigned(self) -> None:
        """Another worker may have changed what this one held before: drop everything derived."""
        self._index_stale = True
        self._prefs_cache.clear()
        self.states.clear()

    def gauges(self) -> dict[str, float]:
        return {"state_cache_users": len(self.states),
                "state_cache_estimated_bytes": self.states.estimated_bytes}
