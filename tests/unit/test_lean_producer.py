"""The worker's Faust producer checks its send buffer cheaply and still flushes a full one."""

from __future__ import annotations

import asyncio

import faust

from streams.faust_ext.producer import EbbCheckedBuffer, LeanBufferProducer


def _producer_buffer(threaded: bool = False) -> faust.types.transports.ProducerBufferT:
    app = faust.App("lean-producer-test", broker="kafka://127.0.0.1:1", producer_threaded=threaded)
    app.transport.Producer = LeanBufferProducer
    return app.producer.buffer


def test_the_worker_producer_uses_the_checked_buffer_unless_threaded() -> None:
    assert isinstance(_producer_buffer(), EbbCheckedBuffer)
    assert not isinstance(_producer_buffer(threaded=True), EbbCheckedBuffer)


def test_a_buffer_over_its_limit_is_flushed_down_to_it() -> None:
    buffer = _producer_buffer()
    flushed: list[int | None] = []

    async def flush_atmost(max_messages: int | None) -> int:  # records what Faust would send
        flushed.append(max_messages)
        while buffer.pending.qsize() > (max_messages or 0):
            buffer.pending.get_nowait()
        return 0

    buffer.flush_atmost = flush_atmost  # type: ignore[method-assign]

    async def scenario() -> None:
        for _ in range(buffer.max_messages):
            buffer.pending.put_nowait(object())
        await buffer.wait_until_ebb()  # at the limit: nothing to do
        assert flushed == [] and buffer.pending.qsize() == buffer.max_messages
        buffer.pending.put_nowait(object())
        await buffer.wait_until_ebb()  # over it: Faust's own check flushes
        assert flushed == [buffer.max_messages]
        assert buffer.pending.qsize() == buffer.max_messages

    asyncio.run(scenario())
