"""The worker's consumer (streams/faust_ext/consumer.py) delivering records to Faust's streams: Faust's
real consumer, conductor and aiokafka consumer, on a stand-in broker (fake_broker.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import faust
import pytest
from aiokafka.errors import ConsumerStoppedError
from fake_broker import EV0, EV1, WorkerApp, ack_all, draining, offsets, queued
from faust.transport.drivers import aiokafka as faust_aiokafka

from streams.faust_ext.consumer import LeanDrainConsumer
from streams.faust_ext.internals import IncompatibleFramework, verify_installed
from tests.waiting import wait_for_async


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


# --- a rebalance ---------------------------------------------------------------------------


def test_stream_records_fetched_during_a_rebalance_reach_the_streams_after_it() -> None:
    """While a rebalance is under way, table recovery reads changelogs and stream records are
    fetched too; Faust clears the streams' queues when it ends, so those must not be delivered
    yet. Once it has ended they are read again from the committed offset."""

    async def scenario() -> None:
        worker = WorkerApp()
        broker = worker.broker
        broker.append(EV0, 8)
        broker.committed[EV0] = 3
        consumer = await worker.start()
        worker.app.on_rebalance_start()
        broker.append(worker.changelog, 2)
        async with draining(consumer):
            await wait_for_async(lambda: len(queued(worker.changelog_reader)) == 2, 5,
                                 "the changelog records (recovery reads them during a rebalance)")
            await worker.handled()
            assert offsets(worker.events) == []  # the stream records of the fetch: held back
            worker.app.on_rebalance_end()
            await wait_for_async(lambda: len(queued(worker.events)) >= 5, 5,
                                 "the held-back records, read again")
            await worker.handled()
        assert offsets(worker.events) == [(0, n) for n in range(3, 8)]  # each once, in order
        assert len(queued(worker.changelog_reader)) == 2  # not read twice

    run(scenario)


# --- what Faust's own consumer does, kept -------------------------------------------------

FAUSTS_OWN = faust_aiokafka.Consumer
BOTH = pytest.mark.parametrize("consumer_class", [FAUSTS_OWN, LeanDrainConsumer],
                               ids=["fausts-own", "lean"])


async def commit_all(consumer: Any) -> None:
    """Commit until there is nothing more to commit: Faust's gap bookkeeping may take two
    commits to pass a gap (its gap intervals include the record after them)."""
    for _ in range(5):
        if not await consumer.commit():
            return
    raise AssertionError("the consumer still had offsets to commit after 5 commits")


@BOTH
def test_offsets_missing_from_a_partition_do_not_stop_the_commits(consumer_class: type) -> None:
    """Compaction and transaction markers leave offsets no record has; they count as acked,
    or the committed offset could never move past them."""

    async def scenario() -> None:
        worker = WorkerApp(consumer_class)
        worker.broker.append(EV0, offsets=[0, 1, 2, 5, 6, 10])
        worker.broker.append(EV1, 3)
        consumer = await worker.start(EV0, EV1)
        async with draining(consumer):
            await wait_for_async(lambda: len(queued(worker.events)) == 9, 5, "every record")
            assert sorted(offsets(worker.events)) == [
                (0, 0), (0, 1), (0, 2), (0, 5), (0, 6), (0, 10), (1, 0), (1, 1), (1, 2)]
            ack_all(worker.events)
            await commit_all(consumer)
        assert worker.broker.committed == {EV0: 11, EV1: 3}

    run(scenario)


@BOTH
def test_records_fetched_again_are_not_delivered_again(consumer_class: type) -> None:
    """The fetch position went back (aiokafka re-reads after a fetch error, a reset): records
    below the last one read are already in the streams."""

    async def scenario() -> None:
        worker = WorkerApp(consumer_class)
        worker.broker.append(EV0, 10)
        consumer = await worker.start(EV0)
        async with draining(consumer):
            await wait_for_async(lambda: len(queued(worker.events)) == 10, 5, "the first records")
            await worker.handled()
            consumer._thread._consumer.seek(EV0, 4)  # aiokafka's position only, not Faust's
            worker.broker.append(EV0, 2)
            await wait_for_async(lambda: (0, 11) in offsets(worker.events), 5, "the new records")
            await worker.handled()
        delivered = [offset for _, offset in offsets(worker.events)]
        # Faust delivers the last read record again (a read offset is that of the last record
        # read, and only records below it are skipped); none below it.
        assert delivered == [*range(10), 9, 10, 11]

    run(scenario)


@BOTH
def test_acked_records_are_committed_every_broker_commit_every(consumer_class: type) -> None:
    async def scenario() -> None:
        worker = WorkerApp(consumer_class, broker_commit_every=3)
        worker.broker.append(EV0, 3)
        consumer = await worker.start(EV0)
        async with draining(consumer):
            await wait_for_async(lambda: len(queued(worker.events)) == 3, 5, "three records")
            ack_all(worker.events)
            assert worker.broker.commits == []  # the next record triggers it
            worker.broker.append(EV0, 1)
            await wait_for_async(lambda: queued(worker.events), 5, "the fourth record")
            assert worker.broker.commits == [{EV0: 3}]

    run(scenario)


@BOTH
def test_a_delivery_waiting_for_the_streams_is_dropped_when_a_rebalance_stops_the_consumer(
        consumer_class: type) -> None:
    """A record handed over while the streams' flow is suspended waits for it. If a rebalance
    stops the consumer meanwhile, the record must not reach a stream when the flow resumes: it
    was fetched for the old assignment, and is read again from the committed offset."""

    async def scenario() -> None:
        worker = WorkerApp(consumer_class)
        worker.broker.append(EV0, 1)
        consumer = await worker.start(EV0)
        worker.app.flow_control.suspend()
        async with draining(consumer):
            await wait_for_async(lambda: worker.broker.answered, 5, "the record fetched")
            consumer.stop_flow()  # a rebalance begins (Faust's revocation)
            # The consumer lets go of the record (Faust then counts it as read).
            await wait_for_async(lambda: consumer._read_offset.get(EV0) == 0, 5,
                                 "the consumer to give up the waiting delivery")
            worker.app.flow_control.resume()  # the rebalance ends
            consumer.resume_flow()
            worker.broker.append(EV0, 1)
            await wait_for_async(lambda: queued(worker.events), 5, "a record after the rebalance")
            assert offsets(worker.events) == [(0, 1)]

    run(scenario)


def test_a_large_fetch_reaches_the_streams_in_batches() -> None:
    """Records of a fetch are handed over without a turn of the event loop each, so the router
    finds many queued and routes them as one batch; every yield_every records the loop gets a
    turn, so other tasks (the router, the web server) are not starved by a large fetch."""

    async def scenario() -> None:
        worker = WorkerApp()
        every = LeanDrainConsumer.yield_every
        total = 3 * every + every // 2
        worker.broker.append(EV0, total)
        consumer = await worker.start(EV0)
        batches: list[int] = []

        async def router() -> None:  # takes whatever is queued each time it gets a turn
            while True:
                await asyncio.sleep(0)
                if taken := ack_all(worker.events):
                    batches.append(taken)

        router_task = asyncio.create_task(router())
        try:
            async with draining(consumer):
                await wait_for_async(lambda: sum(batches) == total, 5, "every record routed")
        finally:
            router_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await router_task
        assert max(batches) <= every + 1, batches
        assert min(batches[:-1]) > 1, batches

    run(scenario)


@BOTH
def test_a_consumer_stopped_while_the_worker_shuts_down_ends_quietly(consumer_class: type) -> None:
    async def scenario() -> None:
        worker = WorkerApp(consumer_class)
        consumer = await worker.start(EV0)
        worker.app._stopped.set()  # what stopping the app sets first (app.should_stop)
        await worker.broker.close()  # aiokafka's fetcher closed: the next fetch raises
        async with draining(consumer) as task:
            await asyncio.wait_for(task, 5)  # returns, no error

    run(scenario)


@BOTH
def test_a_consumer_stopped_while_the_worker_runs_is_an_error(consumer_class: type) -> None:
    async def scenario() -> None:
        worker = WorkerApp(consumer_class)
        consumer = await worker.start(EV0)
        await worker.broker.close()
        drain = asyncio.create_task(consumer._drain_messages(faust.transport.consumer.Fetcher(
            worker.app)))
        with pytest.raises(ConsumerStoppedError):
            await asyncio.wait_for(drain, 5)
        await consumer._thread._consumer.stop()

    run(scenario)


def test_a_faust_without_the_internals_the_consumer_overrides_fails_at_start_up(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(faust.transport.consumer.Consumer, "_add_gap")  # where Faust defines it
    with pytest.raises(IncompatibleFramework, match=r"missing: .*Consumer._add_gap.*consumer.py"):
        verify_installed()
