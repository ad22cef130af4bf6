"""Faust's tables write to the partition of the "current event" (``faust.current_event()``); the
router routes a batch partition by partition outside Faust's per-event iteration, so it points
the current event at each partition itself (streams/worker/event_router.py, through
streams/faust_ext/current_event.py). Here the real ``Worker`` is built without a broker or
registry (both stood in for), and each state write is checked against the partition Faust's
table would pick for it at that moment (offline_pipeline.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.types.tuples import ConsumerMessage
from offline_pipeline import offline_pipeline
from unit_helpers import T0, event

from streams.contracts.schemas import subject_for
from streams.faust_ext import current_event
from streams.worker.app import Worker


@pytest.fixture
def pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Worker:
    return offline_pipeline(tmp_path, monkeypatch)


def _event(pipeline: Worker, partition: int, offset: int, user: str) -> faust.Event:
    topic = "notifications.events"
    value = pipeline.codec.encode(subject_for(topic),
                                  event(f"e-{user}-{offset}", user_id=user).to_avro())
    message = ConsumerMessage(topic=topic, partition=partition, offset=offset,
                              timestamp=T0 / 1000, timestamp_type=0, headers=[],
                              key=user.encode(), value=value, checksum=None,
                              generation_id=pipeline.app.consumer_generation_id)
    return faust.Event(pipeline.app, message.key, value, [], message)


def _record_state_writes(pipeline: Worker) -> list[tuple[int, int | None]]:
    """(partition written, partition Faust's table picks then) for each user state written."""
    writes: list[tuple[int, int | None]] = []
    users, set_raw = pipeline.users, pipeline.users.set_raw

    def recording_set_raw(partition: int, key: bytes, value: bytes) -> None:
        writes.append((partition, users.partition_for_key(key)))
        set_raw(partition, key, value)

    pipeline.users.set_raw = recording_set_raw  # type: ignore[method-assign]
    return writes


def test_a_batch_over_several_partitions_writes_each_users_state_where_faust_would(
        pipeline: Worker) -> None:
    writes = _record_state_writes(pipeline)
    batch = [_event(pipeline, 0, 5, "ann"), _event(pipeline, 1, 9, "bob"),
             _event(pipeline, 0, 6, "cid")]
    asyncio.run(pipeline.router.route_batch(batch))
    assert sorted(writes) == [(0, 0), (0, 0), (1, 1)]
    assert pipeline.users.get_raw(1, b"bob") is not None
    assert pipeline.users.get_raw(0, b"bob") is None


def test_routing_parked_events_leaves_the_callers_partition_current(pipeline: Worker) -> None:
    """A tick of partition 1 first routes the events parked during a flush, here of partition
    0; its own table writes afterwards must still go to partition 1."""
    acked: list[Any] = []

    async def ack(event: Any) -> bool:
        acked.append(event)
        return True

    pipeline.router.ack = ack  # the router stream's ack (set when the router agent starts)
    parked = _event(pipeline, 0, 3, "ann")
    pipeline.router.parking.begin_flush({b"ann"})
    assert pipeline.router.parking.admit([parked]) == []
    pipeline.router.parking.end_flush()
    tick = _event(pipeline, 1, 0, "tick")

    async def tick_releases_parked_events() -> int | None:
        current_event.point_at(tick)  # what Faust's tick stream sets for its event
        await pipeline.router.route_parked()
        return pipeline.users.partition_for_key(b"dan")  # a write the tick would make now

    assert asyncio.run(tick_releases_parked_events()) == 1
    assert acked == [parked] and pipeline.users.get_raw(0, b"ann") is not None
