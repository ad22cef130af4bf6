"""The worker's receipts path, built without a broker: receipts joined with the users' pending
fallbacks in the same store the router writes, and never while a user's flush is on its way."""

from __future__ import annotations

import asyncio

import orjson
from test_avro_codec import FakeRegistry
from test_worker_composition import (
    NOW,
    TOPICS,
    ConsumedEvent,
    DeadLettered,
    Message,
    SentDeliveries,
    _store,
)

from streams.contracts.avro_codec import AvroCodec
from streams.contracts.pipeline_codec import pipeline_codec
from streams.contracts.schemas import load_schema, subject_for
from streams.core.clock import ManualClock
from streams.core.model import Channel, Event, FallbackChain, Receipt, ReceiptStatus
from streams.core.routing.state import UserState
from streams.core.settings import RouterSettings
from streams.worker.event_router import EventRouter
from streams.worker.metrics import PipelineMetrics
from streams.worker.progress import RouterProgress
from streams.worker.receipt_router import ReceiptRouter
from streams.worker.replay_gate import ReplayGate, ReplayGates
from streams.worker.schema_wait import SchemaWait

TIMEOUT_MS = 30_000
RULES = RouterSettings(fallbacks={"billing": FallbackChain((Channel.PUSH, Channel.SMS), TIMEOUT_MS)})
PREFS = {"user_id": "u1", "muted_categories": [], "muted_by_channel": {}, "category_modes": {},
         "quiet_hours": None, "timezone": "UTC", "updated_at": NOW, "fallbacks": {},
         "channels": [{"channel": "PUSH", "enabled": True, "address": "tok-1", "throttle_limit": None},
                      {"channel": "SMS", "enabled": True, "address": "+49151", "throttle_limit": None}]}


class Pipeline:
    """An EventRouter and a ReceiptRouter on one store, writing to lists instead of topics."""

    def __init__(self) -> None:
        registry = FakeRegistry()
        self.writer = AvroCodec(registry, {subject_for(TOPICS.events): load_schema("notification_event"),
                                           subject_for(TOPICS.receipts): load_schema("delivery_status")})
        for subject in (subject_for(TOPICS.events), subject_for(TOPICS.receipts)):
            self.writer.schema_id(subject)  # registered, as `stack up` does
        for topic in TOPICS.all_deliveries().values():
            AvroCodec(registry, {subject_for(topic): load_schema("delivery")}).schema_id(subject_for(topic))
        codec = pipeline_codec(registry, TOPICS)
        self.store = _store()
        self.store.store_prefs(b"u1", PREFS)
        self.sent, self.dead = SentDeliveries(), DeadLettered()
        metrics, clock = PipelineMetrics(), ManualClock(NOW)
        progress = RouterProgress(60)
        schemas = SchemaWait(codec, [], metrics, progress, delays=lambda attempt: 0.001, in_thread=False)
        self.router = EventRouter(self.store, codec, self.sent, self.dead, metrics, RULES, clock,
                                  ReplayGate(lambda p: {}), generation=lambda: 1, schemas=schemas,
                                  progress=progress)
        self.receipts_gate = ReplayGate(lambda partitions: {p: 3 for p in partitions})
        self.receipts = ReceiptRouter(self.store, codec, self.sent, self.dead, metrics, RULES, clock,
                                      self.receipts_gate, self.router, generation=lambda: 1)
        self.metrics = metrics

    def event(self, offset: int) -> ConsumedEvent:
        event = Event(event_id=f"e{offset}", user_id="u1", category="billing", occurred_at=NOW,
                      title="Invoice", body="b", channels=(Channel.PUSH, Channel.SMS))
        value = self.writer.encode(subject_for(TOPICS.events), event.to_avro())
        return ConsumedEvent(Message(TOPICS.events, 0, offset, b"u1", value))

    def receipt(self, offset: int, delivery_id: str, status: ReceiptStatus,
                value: bytes | None = None) -> ConsumedEvent:
        if value is None:
            record = Receipt(delivery_id, "u1", Channel.PUSH, status, NOW, NOW).to_avro()
            value = self.writer.encode(subject_for(TOPICS.receipts), record)
        return ConsumedEvent(Message(TOPICS.receipts, 0, offset, b"u1", value))


def test_a_bounce_receipt_sends_the_next_channel_and_a_bad_one_is_dead_lettered() -> None:
    pipe = Pipeline()
    asyncio.run(pipe.router.route_batch([pipe.event(0)]))
    [push] = pipe.sent.sent
    assert push.channel == Channel.PUSH and pipe.store.due_users(0, NOW + TIMEOUT_MS, 10) == [b"u1"]
    batch = [pipe.receipt(0, push.delivery_id, ReceiptStatus.BOUNCED),
             pipe.receipt(1, "", ReceiptStatus.FAILED, value=b"not avro")]
    assert asyncio.run(pipe.receipts.route_batch(batch)) == batch
    [_, sms] = pipe.sent.sent
    assert (sms.channel, sms.fallback_of, sms.address) == (Channel.SMS, push.delivery_id, "+49151")
    assert pipe.dead.written == [(1, "undecodable")]
    counters = pipe.metrics.counters
    assert counters[("fallback", "bounced")] == counters[("fallback", "sent")] == 1
    stored = UserState.from_dict(orjson.loads(pipe.store.users[b"u1"]))
    assert stored.fallbacks == {} and push.delivery_id in stored.fell_back  # saved: no more to watch


def test_a_delivered_receipt_clears_the_stored_fallback() -> None:
    pipe = Pipeline()
    asyncio.run(pipe.router.route_batch([pipe.event(0)]))
    [push] = pipe.sent.sent
    asyncio.run(pipe.receipts.route_batch([pipe.receipt(0, push.delivery_id, ReceiptStatus.DELIVERED)]))
    assert len(pipe.sent.sent) == 1 and pipe.metrics.counters[("fallback", "cleared")] == 1
    assert UserState.from_dict(orjson.loads(pipe.store.users[b"u1"])).fallbacks == {}
    pipe.store.on_partitions_assigned()
    assert pipe.store.due_users(0, NOW + TIMEOUT_MS, 10) == []


def test_a_flushing_users_receipts_wait_until_the_flush_ends() -> None:
    pipe = Pipeline()
    asyncio.run(pipe.router.route_batch([pipe.event(0)]))
    [push] = pipe.sent.sent

    async def scenario() -> None:
        pipe.router.parking.begin_flush([b"u1"])
        joined = asyncio.ensure_future(
            pipe.receipts.route_batch([pipe.receipt(0, push.delivery_id, ReceiptStatus.BOUNCED)]))
        for _ in range(10):  # the join waits on the flush's end, nothing else
            await asyncio.sleep(0)
        assert not joined.done() and len(pipe.sent.sent) == 1
        async with pipe.router.lock:
            pipe.router.parking.end_flush()
        await asyncio.wait_for(joined, 10)

    asyncio.run(scenario())
    assert [d.channel for d in pipe.sent.sent] == [Channel.PUSH, Channel.SMS]


def test_pending_fallbacks_are_found_again_after_a_rebalance() -> None:
    pipe = Pipeline()
    asyncio.run(pipe.router.route_batch([pipe.event(0)]))
    pipe.store.on_partitions_assigned()  # the due index is rebuilt from the table
    assert pipe.store.due_users(0, NOW + TIMEOUT_MS - 1, 10) == []
    assert pipe.store.due_users(0, NOW + TIMEOUT_MS, 10) == [b"u1"]


def test_flushes_wait_for_the_receipts_replay_too() -> None:
    pipe = Pipeline()
    events_gate = ReplayGate(lambda partitions: {})
    gates = ReplayGates(events_gate, pipe.receipts_gate)
    asyncio.run(gates.refresh_if_stale([0]))
    assert gates.holds(0)  # receipts up to offset 3 not joined yet: a timeout could pre-empt them
    asyncio.run(pipe.receipts.route_batch([pipe.receipt(2, "d", ReceiptStatus.DELIVERED)]))
    assert not gates.holds(0)
    gates.mark_stale()
    asyncio.run(gates.refresh_if_stale([0]))
    assert not gates.holds(0)  # joined up to the end: nothing to wait for
