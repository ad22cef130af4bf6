"""The live feed's fan-out and memory (inbox/hub.py): pure logic, no broker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from inbox.cursor import Cursor
from inbox.hub import QUEUE_LIMIT, FeedHub, SeenIds, merge_replay
from inbox.notifications import Notification

T0 = datetime(2025, 3, 1, tzinfo=UTC)


def note(delivery_id: str, seconds: float, read: bool = False) -> Notification:
    return Notification(delivery_id, "SINGLE", "billing", "NORMAL", delivery_id, "", 1, None,
                        T0 + timedelta(seconds=seconds), T0 if read else None)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_notification_goes_to_each_open_connection_of_its_user_only() -> None:
    async def scenario() -> None:
        hub = FeedHub(window_s=60, max_recent=100, clock=Clock())
        alice_1, alice_2, bob = hub.subscribe("alice"), hub.subscribe("alice"), hub.subscribe("bob")
        hub.publish("alice", note("a1", 1))
        assert (await alice_1.next(1)).delivery_id == "a1"
        assert (await alice_2.next(1)).delivery_id == "a1"
        assert bob.queue.empty()
        hub.unsubscribe(alice_1)
        hub.publish("alice", note("a2", 2))
        assert alice_1.queue.empty() and (await alice_2.next(1)).delivery_id == "a2"
        assert hub.connections() == 2
        hub.close_all()
        assert await alice_2.next(1) is None and await bob.next(1) is None
    asyncio.run(scenario())


def test_a_connection_too_far_behind_is_ended_instead_of_growing() -> None:
    async def scenario() -> None:
        hub = FeedHub(window_s=60, max_recent=10 * QUEUE_LIMIT, clock=Clock())
        slow = hub.subscribe("alice")
        for i in range(QUEUE_LIMIT + 10):
            hub.publish("alice", note(f"n{i}", i))
        got = [await slow.next(1) for _ in range(QUEUE_LIMIT + 1)]
        assert got[-1] is None and slow.overflowed and slow.queue.empty()
    asyncio.run(scenario())


def test_recent_notifications_are_remembered_for_the_window_and_up_to_the_limit() -> None:
    clock = Clock()
    hub = FeedHub(window_s=60, max_recent=3, clock=clock)
    hub.publish("alice", note("a1", 1))
    hub.publish("bob", note("b1", 2))
    assert hub.recent("alice", "a1") is not None and hub.recent("bob", "a1") is None
    clock.now += 61
    hub.publish("alice", note("a2", 3))  # forgetting happens as new ones come
    assert hub.recent("alice", "a1") is None and hub.recent("bob", "b1") is None
    for i in range(3, 7):
        hub.publish("alice", note(f"a{i}", i))
    assert hub.recent_count() == 3
    assert [n.delivery_id for n in hub.recent_after("alice", Cursor.of(T0, "x"))] == ["a4", "a5", "a6"]
    assert [n.delivery_id for n in hub.recent_after("alice", note("a5", 5).cursor)] == ["a6"]


def test_a_replay_is_both_sources_after_the_cursor_each_delivery_once_oldest_first() -> None:
    after = note("c", 10).cursor
    stored = [note("s1", 11, read=True), note("both", 12, read=True)]
    recent = [note("old", 9), note("both", 12), note("r1", 13)]
    replay = merge_replay(stored, recent, after)
    assert [n.delivery_id for n in replay] == ["s1", "both", "r1"]
    assert replay[1].read_at is not None  # the stored row wins: it has the user's marks


def test_seen_ids_drop_repeats_and_stay_bounded() -> None:
    seen = SeenIds(limit=2)
    assert seen.first_time("a") and seen.first_time("b")
    assert not seen.first_time("a")
    assert seen.first_time("c")  # "b" was the least recently seen
    assert seen.first_time("b") and not seen.first_time("c")
