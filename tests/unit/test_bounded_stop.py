"""A stopping worker waits a bounded time for the events its agents took
(streams/faust_ext/bounded_stop.py): Faust's real consumer and its ``wait_empty`` on a stand-in
broker (fake_broker.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fake_broker import EV0, WorkerApp, draining, queued

from streams.faust_ext.bounded_stop import BoundedStopConsumer, bound_stop_wait
from streams.faust_ext.consumer import LeanDrainConsumer
from tests.waiting import wait_for_async


def bounded_worker(stop_wait_s: float) -> WorkerApp:
    worker = WorkerApp()
    bound_stop_wait(worker.app, stop_wait_s)
    return worker


async def five_taken_two_acked(worker: WorkerApp, consumer: Any) -> list[Any]:
    """Five events taken by the streams (tracked, as the router's take does), the first two
    acknowledged: the last three are what an agent that crashed or waits would leave."""
    await wait_for_async(lambda: len(queued(worker.events)) == 5, 5, "five records delivered")
    events = queued(worker.events)
    for event in events:
        consumer.track_message(event.message)
    for event in events[:2]:
        event.ack()
    return events


def test_the_consumer_class_keeps_the_lean_one_and_adds_the_bound() -> None:
    worker = bounded_worker(3.5)
    consumer_class = worker.app.transport.Consumer
    assert issubclass(consumer_class, BoundedStopConsumer)
    assert issubclass(consumer_class, LeanDrainConsumer)
    assert consumer_class.stop_wait_s == 3.5


async def stopping_wait(worker: WorkerApp, consumer: Any) -> None:
    """``wait_empty`` of a stopping app; fails if it has not ended after 5 s. Faust's own does not
    end while events are unacknowledged, and ignores a cancellation: the consumer's own stop is
    what ends it then."""
    worker.app._stopped.set()  # what stopping the app sets first (app.should_stop)
    waiting = asyncio.create_task(consumer.wait_empty())
    done, _ = await asyncio.wait({waiting}, timeout=5)
    if not done:
        consumer._stopped.set()
        await waiting
        pytest.fail("a stopping worker waited for its unacknowledged events for 5 s and more")


def test_a_stopping_worker_stops_waiting_for_unacknowledged_events_at_the_bound() -> None:
    async def scenario() -> None:
        worker = bounded_worker(0.3)
        worker.broker.append(EV0, 5)
        consumer = await worker.start(EV0)
        async with draining(consumer):
            await five_taken_two_acked(worker, consumer)
        await stopping_wait(worker, consumer)

    asyncio.run(scenario())


def test_at_the_bound_the_safe_offsets_are_committed() -> None:
    async def scenario() -> None:
        worker = bounded_worker(0.0)  # no turn of the wait loop: the commit is the bound's own
        worker.broker.append(EV0, 5)
        consumer = await worker.start(EV0)
        async with draining(consumer):
            await five_taken_two_acked(worker, consumer)
        await stopping_wait(worker, consumer)
        assert worker.broker.committed == {EV0: 2}  # below the first unacknowledged event

    asyncio.run(scenario())


def test_a_rebalance_still_waits_for_every_taken_event() -> None:
    """A revoked partition must not be routed by two workers at once: outside a stop the wait is
    Faust's, however long (the bound is 0 here: a bounded wait would end before it began)."""

    async def scenario() -> None:
        worker = bounded_worker(0.0)
        worker.broker.append(EV0, 5)
        consumer = await worker.start(EV0)
        async with draining(consumer):
            events = await five_taken_two_acked(worker, consumer)
        waiting = asyncio.create_task(consumer.wait_empty())
        # Faust's loop has committed what it could and now waits for an ack.
        await wait_for_async(lambda: consumer._waiting_for_ack is not None, 5,
                             "wait_empty to wait for the remaining acks")
        assert not waiting.done()
        for event in events[2:]:
            event.ack()
        await asyncio.wait_for(waiting, 5)
        assert worker.broker.committed == {EV0: 5}

    asyncio.run(scenario())
