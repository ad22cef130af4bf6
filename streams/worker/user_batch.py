"""One partition's share of a batch, as both routers (events, receipts) handle its users' states:
each state read once, written once if the rules changed it, its due time set again once if that
moved. A failure before the writes are done drops every state read from the cache: they may have
been changed in place and not stored, so they are read again from the table.

    with UserBatch(store, partition) as users:
        state = users.state(key)
        ...  # the rules change the state in place
        users.note(key, result.changed, result.holds_changed)
"""

from __future__ import annotations

from types import TracebackType

from streams.core.model import Preferences
from streams.core.routing.state import UserState
from streams.worker.user_store import UserStore


class UserBatch:
    __slots__ = ("_store", "_partition", "_states", "_changed", "_due_changed")

    def __init__(self, store: UserStore, partition: int) -> None:
        self._store, self._partition = store, partition
        self._states: dict[bytes, UserState] = {}
        self._changed: set[bytes] = set()
        self._due_changed: set[bytes] = set()

    def state(self, key: bytes) -> UserState:
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = self._store.load(self._partition, key)
        return state

    def prefs(self, key: bytes) -> Preferences | None:
        return self._store.prefs(self._partition, key)

    def note(self, key: bytes, changed: bool, due_changed: bool) -> None:
        """What the rules did to the user's state: changed it (write it), moved when it is next
        due (schedule it)."""
        if changed:
            self._changed.add(key)
        if due_changed:
            self._due_changed.add(key)

    def __enter__(self) -> UserBatch:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        store, partition, states = self._store, self._partition, self._states
        if kind is not None:
            store.discard(states)  # the error goes on
            return
        try:
            for key in self._changed:  # one state write per user per batch
                store.save(partition, key, states[key])
        except BaseException:
            store.discard(states)
            raise
        for key in self._due_changed:
            store.schedule(partition, key, states[key])
