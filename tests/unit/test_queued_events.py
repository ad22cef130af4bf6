"""Events taken straight from the router stream's queue (streams/faust_ext/queued_events.py) keep what
Faust's stream iterator does for correctness: skipping across a rebalance, tracking for the
rebalance's wait. Records reach the queue through Faust's real consumer and conductor, from a
stand-in broker (fake_broker.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fake_broker import EV0, WorkerApp, draining, queued

from streams.faust_ext.queued_events import take_queued
from tests.waiting import wait_for_async


async def fetched(worker: WorkerApp, count: int) -> Any:
    """The worker's consumer, with ``count`` records on the broker for it."""
    worker.broker.append(EV0, count)
    return await worker.start(EV0)


def test_takes_waiting_events_in_order_up_to_the_limit() -> None:
    async def scenario() -> None:
        worker = WorkerApp()
        consumer = await fetched(worker, 5)
        async with draining(consumer):
            await wait_for_async(lambda: len(queued(worker.events)) == 5, 5, "five events")
            batch: list[Any] = []
            take_queued(worker.app, worker.events.queue, batch, limit=3)
            assert [e.message.offset for e in batch] == [0, 1, 2]
            assert worker.events.queue.qsize() == 2  # left for the next batch

    asyncio.run(scenario())


def test_a_rebalance_waits_for_the_routing_of_taken_events_and_commits_them() -> None:
    """Faust's rebalance (``Consumer.wait_empty``) waits until every tracked event is acked,
    then commits: events taken here are tracked as the stream iterator tracks its own."""

    async def scenario() -> None:
        worker = WorkerApp()
        consumer = await fetched(worker, 3)
        async with draining(consumer):
            await wait_for_async(lambda: len(queued(worker.events)) == 3, 5, "three events")
            batch: list[Any] = []
            take_queued(worker.app, worker.events.queue, batch, limit=10)
            rebalance_wait = asyncio.create_task(consumer.wait_empty())
            await wait_for_async(lambda: rebalance_wait.done() or consumer._waiting_for_ack,
                                 5, "the rebalance to wait for acks (or to finish)")
            assert not rebalance_wait.done(), "the rebalance did not wait for the taken events"
            for event in batch:  # routed
                event.ack()
            await asyncio.wait_for(rebalance_wait, 5)
        assert worker.broker.committed == {EV0: 3}

    asyncio.run(scenario())


def test_events_fetched_before_a_rebalance_are_skipped_and_left_unacked() -> None:
    """They belong to the previous assignment: whoever owns the partition now reads them again
    from the committed offset (Faust's stream skips them the same way)."""

    async def scenario() -> None:
        worker = WorkerApp()
        worker.app.consumer_generation_id = 6
        consumer = await fetched(worker, 2)
        async with draining(consumer):
            await wait_for_async(lambda: len(queued(worker.events)) == 2, 5, "two events")
            stale = queued(worker.events)
            worker.app.consumer_generation_id = 7  # a rebalance happened
            worker.broker.append(EV0, 1)
            await wait_for_async(lambda: len(queued(worker.events)) == 3, 5, "a new event")
            batch: list[Any] = []
            take_queued(worker.app, worker.events.queue, batch, limit=10)
            assert [e.message.offset for e in batch] == [2]
            assert not any(e.message.acked or e.message in consumer.unacked for e in stale)
            assert worker.events.queue.empty()

    asyncio.run(scenario())


def test_nothing_is_taken_while_the_flow_is_suspended_for_a_rebalance() -> None:
    async def scenario() -> None:
        worker = WorkerApp()
        consumer = await fetched(worker, 2)
        async with draining(consumer):
            await wait_for_async(lambda: len(queued(worker.events)) == 2, 5, "two events")
            worker.app.flow_control.suspend()
            batch: list[Any] = []
            take_queued(worker.app, worker.events.queue, batch, limit=10)
            assert batch == [] and not consumer.unacked

    asyncio.run(scenario())


def test_events_of_topics_without_acks_are_not_tracked() -> None:
    async def scenario() -> None:
        worker = WorkerApp(events_acked=False)
        consumer = await fetched(worker, 1)
        async with draining(consumer):
            await wait_for_async(lambda: queued(worker.events), 5, "an event")
            batch: list[Any] = []
            take_queued(worker.app, worker.events.queue, batch, limit=10)
            assert len(batch) == 1 and not consumer.unacked

    asyncio.run(scenario())


def test_something_other_than_an_event_in_the_queue_is_a_clear_error() -> None:
    worker = WorkerApp()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    queue.put_nowait(b"raw value")
    with pytest.raises(TypeError, match="expected Faust events"):
        take_queued(worker.app, queue, [], limit=10)
