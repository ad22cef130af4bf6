"""A batch's users' states: read once, written once if changed, scheduled once if their due time
moved, and all dropped from the cache when the batch fails. The store records what is asked of
it (the real one, on tables: test_worker_composition.py, and both routers' tests)."""

from __future__ import annotations

import pytest

from streams.worker.user_batch import UserBatch


class RecordingStore:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def load(self, partition: int, key: bytes) -> dict:
        self.calls.append(("load", partition, key))
        return {"user": key}

    def prefs(self, partition: int, key: bytes) -> None:
        return None

    def save(self, partition: int, key: bytes, state: dict) -> None:
        self.calls.append(("save", partition, key))

    def schedule(self, partition: int, key: bytes, state: dict) -> None:
        self.calls.append(("schedule", partition, key))

    def discard(self, states: dict) -> None:
        self.calls.append(("discard", sorted(states)))


def test_each_state_is_read_once_written_if_changed_and_scheduled_if_due_moved() -> None:
    store = RecordingStore()
    with UserBatch(store, 3) as users:  # type: ignore[arg-type]
        assert users.state(b"ann") is users.state(b"ann")
        users.note(b"ann", changed=True, due_changed=False)
        users.state(b"bob")
        users.note(b"bob", changed=False, due_changed=True)
        users.note(b"ann", changed=True, due_changed=False)  # a second event of ann's
    assert store.calls == [("load", 3, b"ann"), ("load", 3, b"bob"),
                           ("save", 3, b"ann"), ("schedule", 3, b"bob")]


def test_a_failed_batch_drops_every_state_it_read_and_writes_none() -> None:
    store = RecordingStore()
    with pytest.raises(RuntimeError, match="DLQ down"), UserBatch(store, 0) as users:  # type: ignore[arg-type]
        users.state(b"ann")
        users.note(b"ann", changed=True, due_changed=True)
        raise RuntimeError("DLQ down")
    assert store.calls == [("load", 0, b"ann"), ("discard", [b"ann"])]


def test_a_failed_write_drops_the_states_and_schedules_nothing() -> None:
    store = RecordingStore()

    def refuse(partition: int, key: bytes, state: dict) -> None:
        raise OSError("disk full")
    store.save = refuse  # type: ignore[method-assign]
    with pytest.raises(OSError, match="disk full"), UserBatch(store, 0) as users:  # type: ignore[arg-type]
        users.state(b"ann")
        users.note(b"ann", changed=True, due_changed=True)
    assert store.calls == [("load", 0, b"ann"), ("discard", [b"ann"])]
