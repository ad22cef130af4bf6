"""Faust's real consumer on a stand-in for the Kafka broker, for unit tests of what the worker
overrides in Faust and aiokafka.

Everything above the network is the real thing: a ``faust.App`` (never started), the consumer
class the worker installs, Faust's aiokafka consumer thread, the ``AIOKafkaConsumer`` Faust builds
with the worker's settings, its subscription state (fetch positions), Faust's conductor and
topic channels (the streams' input queues). Only aiokafka's two network parts are replaced by
``FakeBroker``: the group coordinator (committed offsets, commits) and the fetcher (records read
from the partitions' logs at the consumer's positions). Faust's consumer thread runs its calls on
the test's event loop instead of its own thread.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import faust
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata, TopicPartition
from faust.transport.consumer import Fetcher

from streams.faust_ext.consumer import LeanDrainConsumer
from streams.faust_ext.raw_schema import RawSchema
from tests.waiting import wait_for_async

UNREACHABLE = "kafka://127.0.0.1:1"  # nothing is ever sent there: the broker is FakeBroker
EVENTS = "notifications.events"
EV0, EV1 = TopicPartition(EVENTS, 0), TopicPartition(EVENTS, 1)


def worker_like_app(name: str, consumer_class: type | None = None, **settings: Any) -> faust.App:
    """A Faust app configured as the worker's (raw keys and values), not started."""
    app = faust.App(name, broker=UNREACHABLE, store="memory://", key_serializer="raw",
                    value_serializer="raw", **settings)
    if consumer_class is not None:
        app.transport.Consumer = consumer_class
    return app


def raw_topic(app: faust.App, name: str, acks: bool = True) -> Any:
    """A topic as the worker declares its inputs: raw schema, acked by the streams."""
    return app.topic(name, schema=RawSchema(), acks=acks)


class FakeBroker:
    """Partitions' logs and a consumer group's committed offsets, served to one consumer as
    aiokafka's group coordinator and fetcher would."""

    def __init__(self) -> None:
        self.logs: dict[TopicPartition, list[ConsumerRecord]] = {}
        self.committed: dict[TopicPartition, int] = {}
        self.commits: list[dict[TopicPartition, int]] = []  # each commit request, in order
        self.fetches = 0  # fetch requests so far
        self.answered = 0  # the last fetch request that returned records
        self.closed = False
        self._subscriptions: Any = None
        self._news = asyncio.Event()

    # --- the test's side ------------------------------------------------------------------

    def append(self, tp: TopicPartition, count: int = 1, *,
               offsets: Iterable[int] | None = None) -> None:
        """Write records (values ``v<offset>``); ``offsets`` leaves holes, as compaction does."""
        log = self.logs.setdefault(tp, [])
        next_offset = log[-1].offset + 1 if log else 0
        for offset in offsets if offsets is not None else range(next_offset, next_offset + count):
            assert offset >= next_offset, "offsets only grow"
            log.append(ConsumerRecord(tp.topic, tp.partition, offset, 1_700_000_000_000, 0,
                                      b"user", b"v%d" % offset, None, 4, 4, []))
            next_offset = offset + 1
        self._news.set()

    def consumer_came_back(self) -> bool:
        """The consumer asked for records again since the last ones it got: it has handled them."""
        return self.fetches > self.answered

    # --- aiokafka's group coordinator -----------------------------------------------------

    async def fetch_committed_offsets(self, partitions: Iterable[TopicPartition]) -> dict:
        return {tp: OffsetAndMetadata(self.committed[tp], "") for tp in partitions
                if tp in self.committed}

    async def commit_offsets(self, assignment: Any, offsets: dict) -> None:
        committed = {tp: meta.offset for tp, meta in offsets.items()}
        self.commits.append(committed)
        self.committed.update(committed)

    def start_commit_offsets_refresh_task(self, assignment: Any) -> None:
        pass  # committed offsets are read from self.committed when asked

    # --- aiokafka's fetcher ---------------------------------------------------------------

    @property
    def _closed(self) -> bool:  # read by Faust's consumer thread before each fetch
        return self.closed

    def seek_to(self, tp: TopicPartition, offset: int) -> None:
        self._subscriptions.seek(tp, offset)
        self._news.set()

    async def fetched_records(self, partitions: Iterable[TopicPartition], timeout: float = 0,
                              max_records: int | None = None) -> dict:
        """Records at the consumer's positions; waits up to ``timeout`` for some (long poll)."""
        self.fetches += 1
        assignment = self._subscriptions.subscription.assignment
        answer: dict[TopicPartition, list[ConsumerRecord]] = {}
        for tp in partitions:
            state = assignment.state_value(tp)
            records = [r for r in self.logs.get(tp, []) if r.offset >= state.position]
            if max_records is not None:
                records = records[:max_records - sum(map(len, answer.values()))]
            if records:
                answer[tp] = records
                state.consumed_to(records[-1].offset + 1)
                state.highwater = self.logs[tp][-1].offset + 1
        if answer:
            self.answered = self.fetches
        elif timeout:
            self._news.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._news.wait(), timeout)
        return answer

    async def close(self) -> None:
        self.closed = True


def connect(app: faust.App, broker: FakeBroker, assignment: Iterable[TopicPartition],
            channels: Iterable[Any] = ()) -> Any:
    """``app.consumer`` assigned ``assignment`` on ``broker``, each partition at its committed
    offset (or its first one, as ``auto_offset_reset=earliest``), and ``channels`` (topics)
    subscribed through Faust's conductor. Call ``await subscribe(app, ...)`` after this."""
    consumer = app.consumer
    thread = consumer._thread

    async def on_this_loop(fun: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        return await fun(*args, **kwargs)

    thread.call_thread = on_this_loop
    aio = thread._create_worker_consumer(app.transport)
    thread._consumer = aio
    tps = list(assignment)
    aio.assign(tps)
    aio._coordinator = aio._fetcher = broker
    broker._subscriptions = aio._subscription
    for tp in tps:
        log = broker.logs.get(tp)
        start = broker.committed.get(tp, log[0].offset if log else 0)
        aio._subscription.seek(tp, start)
    for channel in channels:
        app.topics.add(channel)
    consumer._set_active_tps(set(tps))
    return consumer


async def subscribe(app: faust.App, assignment: Iterable[TopicPartition]) -> None:
    """What Faust does once partitions are assigned: route their records to the channels, and
    open the flow to the streams."""
    await app.topics._update_indices()
    await app.topics.on_partitions_assigned(set(assignment))
    app.flow_control.resume()


@contextlib.asynccontextmanager
async def draining(consumer: Any) -> AsyncIterator[asyncio.Task]:
    """The consumer's fetch-and-deliver loop (what Faust's Fetcher service runs), as a task."""
    task = asyncio.create_task(consumer._drain_messages(Fetcher(consumer.app)))
    try:
        yield task
    finally:
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await consumer._thread._consumer.stop()


def queued(channel: Any) -> list[Any]:
    """The events waiting in a channel's queue (what its stream would read), oldest first."""
    return list(channel.queue._queue)


def ack_all(channel: Any) -> int:
    """What the streams do once they have processed their events."""
    events = queued(channel)
    channel.queue._queue.clear()
    for event in events:
        event.ack()
    return len(events)


def offsets(channel: Any) -> list[tuple[int, int]]:
    """(partition, offset) of the events waiting in a stream's queue."""
    return [(e.message.partition, e.message.offset) for e in queued(channel)]


class WorkerApp:
    """A worker-like app on a FakeBroker: the consumer class under test, the events topic and a
    users table (whose changelog the same consumer reads)."""

    def __init__(self, consumer_class: type = LeanDrainConsumer, events_acked: bool = True,
                 **settings: Any) -> None:
        self.app = worker_like_app("worker-test", consumer_class, **settings)
        self.users = self.app.Table("users", partitions=2, key_type=bytes, value_type=bytes)
        self.changelog = TopicPartition(self.users.changelog_topic.get_topic_name(), 0)
        self.events = raw_topic(self.app, EVENTS, acks=events_acked)
        # Table recovery reads the changelog through the same consumer; here a channel stands in.
        self.changelog_reader = raw_topic(self.app, self.changelog.topic)
        self.broker = FakeBroker()

    async def start(self, *tps: TopicPartition) -> Any:
        assignment = tps or (EV0, self.changelog)
        consumer = connect(self.app, self.broker, assignment, [self.events, self.changelog_reader])
        await subscribe(self.app, assignment)
        return consumer

    async def handled(self) -> None:
        """Until the consumer has delivered everything fetched so far and asked for more."""
        await wait_for_async(self.broker.consumer_came_back, 5, "the consumer to fetch again")
