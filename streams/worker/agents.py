"""The worker's Faust agents and its timer: glue from Faust's streams to the parts that work."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.contracts.avro_codec import AvroCodec, DecodeError
from streams.core.routing.validation import InvalidRecord, decode_preferences, validate_preferences
from streams.faust_ext.queued_events import take_queued
from streams.worker.dead_letters import DeadLetters
from streams.worker.delivery_producer import DeliveryProducer
from streams.worker.event_router import EventRouter
from streams.worker.flusher import DueFlusher
from streams.worker.metrics import PipelineMetrics
from streams.worker.receipt_router import ReceiptRouter
from streams.worker.tick_rotation import TickRotation
from streams.worker.user_store import UserStore


class Agents:
    def __init__(self, app: Any, store: UserStore, codec: AvroCodec, router: EventRouter,
                 receipts: ReceiptRouter, flusher: DueFlusher, dead_letters: DeadLetters,
                 deliveries: DeliveryProducer, metrics: PipelineMetrics, ticks_topic: Any,
                 partitions: int, owned: Callable[[], list[int]], batch_max: int) -> None:
        self.app, self.store, self.codec, self.router, self.flusher = app, store, codec, router, flusher
        self.receipt_router = receipts
        self.dead_letters, self.deliveries, self.metrics = dead_letters, deliveries, metrics
        self.ticks_topic, self._owned, self.batch_max = ticks_topic, owned, batch_max
        self.rotation = TickRotation(partitions)

    async def preferences(self, stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            if message.value is None:  # tombstone: back to defaults
                self.store.reset_prefs(message.key)
                self.metrics.inc("preferences", "reset")
                continue
            await self.router.schemas.ready([message.value])  # waits while the registry is away
            try:
                _, record = self.codec.decode(message.value)
                validate_preferences(decode_preferences(record), message.key)
            except (DecodeError, InvalidRecord) as exc:
                await self.dead_letters.write(message, exc)
                continue
            self.store.store_prefs(message.key, record)
            self.metrics.inc("preferences", "stored")

    async def router_agent(self, stream: Any) -> None:
        # Events are taken as they arrive and routed in batches: whatever is already waiting in
        # the stream's queue (up to batch_max), so a batch costs no extra latency when the worker
        # keeps up and amortises the per-batch work when it does not. Acks are manual and come
        # after the routing, so every committable offset has been routed.
        manual = stream.noack()
        self.router.ack = manual.ack  # parked events are acked by the flush that releases them
        waiting = manual.channel.queue
        self.router.progress.watch(waiting)  # /health shows what waits to be routed
        batch: list[Any] = []
        async for event in manual.events():
            batch.append(event)
            take_queued(self.app, waiting, batch, self.batch_max)  # the rest, in one go
            for done in await self.router.route_batch(batch):
                await manual.ack(done)
            batch = []
            self.deliveries.poll()

    async def receipts(self, stream: Any) -> None:
        # Batched like the router's events, and acked once joined.
        manual = stream.noack()
        waiting = manual.channel.queue
        batch: list[Any] = []
        async for event in manual.events():
            batch.append(event)
            take_queued(self.app, waiting, batch, self.batch_max)
            for done in await self.receipt_router.route_batch(batch):
                await manual.ack(done)
            batch = []
            self.deliveries.poll()

    async def ticks(self, stream: Any) -> None:
        async for event in stream.events():
            await self.flusher.flush_partition(event.message.partition)
            # Serve delivery reports even when no event comes (they date the latest deliveries).
            self.deliveries.poll()

    async def send_tick(self) -> None:
        """Each timer firing ticks at most one owned partition (tick_rotation.py)."""
        partition = self.rotation.next(self._owned())
        if partition is not None:
            await self.ticks_topic.send(partition=partition, key=None, value=b"")
