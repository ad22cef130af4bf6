"""The worker's Faust producer checks its send buffer cheaply and still flushes a full one."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
from faust.types.tuples import FutureMessage, PendingMessage

from streams.lean_producer import EbbCheckedBuffer, LeanBufferProducer


def _producer_buffer(threaded: bool = False) -> faust.types.transports.ProducerBufferT:
    app = faust.App("lean-producer-test", broker="kafka://127.0.0.1:1", producer_threaded=threaded)
    app.transport.Producer = LeanBufferProducer
    return app.producer.buffer


def test_the_worker_producer_uses_the_checked_buffer_unless_threaded() -> None:
    assert isinstance(_producer_buffer(), EbbCheckedBuffer)
    assert not isinstance(_producer_buffer(threaded=True), EbbCheckedBuffer)


class BrokerTopic:
    """Stands in for a topic and the broker behind it: what Faust's send buffer publishes."""

    def __init__(self) -> None:
        self.published: list[bytes] = []

    async def publish_message(self, fut: FutureMessage, wait: bool = False) -> None:
        self.published.append(fut.message.value)
        fut.set_result(None)  # type: ignore[arg-type]


def _queue_sends(buffer: Any, topic: BrokerTopic, count: int) -> None:
    """What synchronous table writes do: queue records in the buffer, to be sent later."""
    for n in range(count):
        buffer.put(FutureMessage(PendingMessage(topic, b"k", b"%d" % n, None, None, None, None,
                                                None, None)))


def test_a_buffer_within_its_limit_lets_the_records_through_at_once() -> None:
    async def scenario() -> None:
        buffer = _producer_buffer()
        topic = BrokerTopic()
        await buffer.start()  # its task sends what is queued, as in a running worker
        try:
            _queue_sends(buffer, topic, buffer.max_messages)
            await buffer.wait_until_ebb()
            assert topic.published == []  # returned without waiting for a single send
            await buffer.flush()
            assert len(topic.published) == buffer.max_messages
        finally:
            await buffer.stop()

    asyncio.run(scenario())


def test_a_buffer_over_its_limit_is_flushed_before_more_records_come_in() -> None:
    """Faust's conductor waits for the buffer to ebb before it hands the streams each record,
    so that table changes queued by ``table[key] = value`` cannot pile up without bound."""

    async def scenario() -> None:
        buffer = _producer_buffer()
        topic = BrokerTopic()
        await buffer.start()
        try:
            _queue_sends(buffer, topic, buffer.max_messages + 1)
            await buffer.wait_until_ebb()
            assert topic.published, "nothing was sent before the stream went on"
            assert buffer.size <= buffer.max_messages
            assert topic.published == [b"%d" % n for n in range(len(topic.published))]
        finally:
            await buffer.stop()

    asyncio.run(scenario())
