"""The worker's seek of never-committed input partitions to their beginning
(streams/faust_ext/partition_seek.py), on Faust's real consumer and aiokafka's real
``seek_to_committed`` over a stand-in broker (fake_broker.py). The whole case (a worker restarted
on an empty disk) is in tests/integration/test_pipeline_restart.py."""

from __future__ import annotations

import asyncio

from fake_broker import EV0, EV1, EVENTS, WorkerApp, draining, offsets, queued

from streams.faust_ext.partition_seek import seek_uncommitted_to_beginning
from tests.waiting import wait_for_async


def test_records_of_a_never_committed_partition_fetched_in_a_rebalance_are_read_again() -> None:
    """aiokafka's seek to the committed offsets leaves a partition the group never committed
    where the fetches left it, past the records read while the rebalance held them back. Input
    partitions without a committed offset start again from their first record; the others
    from their committed offset; changelogs stay where table recovery put them."""

    async def scenario() -> None:
        worker = WorkerApp()
        broker = worker.broker
        broker.append(EV0, 4)  # never committed
        broker.append(EV1, 4)
        broker.committed[EV1] = 2
        broker.append(worker.changelog, 3)  # changelogs are never committed by the group
        consumer = await worker.start(EV0, EV1, worker.changelog)
        seek_uncommitted_to_beginning(consumer, {EVENTS})  # as the worker does
        worker.app.on_rebalance_start()
        async with draining(consumer):
            await wait_for_async(lambda: len(queued(worker.changelog_reader)) == 3, 5,
                                 "the changelog records")
            await worker.handled()
            worker.app.on_rebalance_end()
            await wait_for_async(lambda: len(queued(worker.events)) >= 6, 5,
                                 "the events read again")
            await worker.handled()
        assert sorted(offsets(worker.events)) == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 2), (1, 3)]
        assert len(queued(worker.changelog_reader)) == 3

    asyncio.run(scenario())
