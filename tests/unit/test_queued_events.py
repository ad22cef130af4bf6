"""Events taken straight from the router stream's queue keep what Faust's stream iterator does
for correctness: skipping across a rebalance, tracking for the rebalance's wait."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import faust
import pytest
from faust.types.tuples import ConsumerMessage, Message

from streams.faust_ext.queued_events import take_queued

EVENTS = "notifications.events"


@dataclass
class _FlowControl:
    active: bool = True

    def is_active(self) -> bool:
        return self.active


@dataclass
class _Consumer:
    tracked: list[int] = field(default_factory=list)

    def track_message(self, message: Message) -> None:
        self.tracked.append(message.offset)


@dataclass
class _Topics:
    acking_topics: set[str] = field(default_factory=lambda: {EVENTS})


@dataclass
class _App:
    consumer: _Consumer = field(default_factory=_Consumer)
    topics: _Topics = field(default_factory=_Topics)
    flow_control: _FlowControl = field(default_factory=_FlowControl)
    consumer_generation_id: int = 7


def _event(app: _App, offset: int, generation: int = 7, topic: str = EVENTS) -> faust.Event:
    # What the consumer builds: untracked until a stream (or take_queued) tracks it.
    message = ConsumerMessage(topic=topic, partition=0, offset=offset, timestamp=1.0, timestamp_type=0,
                      headers=[], key=b"u", value=b"v", checksum=None, generation_id=generation)
    return faust.Event(app, b"u", b"v", [], message)  # type: ignore[arg-type]


def _queue(*events: Any) -> asyncio.Queue[Any]:
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for event in events:
        queue.put_nowait(event)
    return queue


def test_takes_waiting_events_in_order_up_to_the_limit_and_tracks_them() -> None:
    app = _App()
    queue = _queue(*(_event(app, offset) for offset in range(1, 6)))
    batch = [_event(app, 0)]  # the one the stream yielded (and tracked) itself
    take_queued(app, queue, batch, limit=4)
    assert [e.message.offset for e in batch] == [0, 1, 2, 3]
    assert app.consumer.tracked == [1, 2, 3] and all(e.message.tracked for e in batch[1:])
    assert queue.qsize() == 2  # left for the next batch


def test_events_from_before_a_rebalance_are_skipped_unacked_and_untracked() -> None:
    app = _App()
    stale = _event(app, 1, generation=6)
    queue = _queue(stale, _event(app, 2))
    batch: list[Any] = []
    take_queued(app, queue, batch, limit=10)
    assert [e.message.offset for e in batch] == [2]
    assert app.consumer.tracked == [2] and not stale.message.tracked and not stale.message.acked


def test_nothing_is_taken_while_the_flow_is_suspended_for_a_rebalance() -> None:
    app = _App(flow_control=_FlowControl(active=False))
    queue = _queue(_event(app, 1), _event(app, 2))
    batch: list[Any] = []
    take_queued(app, queue, batch, limit=10)
    assert batch == [] and app.consumer.tracked == [] and queue.empty()


def test_messages_of_topics_without_acks_are_not_tracked_and_tracked_ones_not_twice() -> None:
    app = _App()
    again = _event(app, 1)
    again.message.tracked = True
    queue = _queue(again, _event(app, 2, topic="other"))
    batch: list[Any] = []
    take_queued(app, queue, batch, limit=10)
    assert len(batch) == 2 and app.consumer.tracked == []


def test_something_other_than_an_event_in_the_queue_is_a_clear_error() -> None:
    app = _App()
    with pytest.raises(TypeError, match="expected Faust events"):
        take_queued(app, _queue(b"raw value"), [], limit=10)
