"""Delivery receipts joined with the users' pending fallbacks (``streams.core.routing.fallback``).

Receipts are keyed by user and co-partitioned with the events, so a receipt's partition holds its
user's state. A batch of them goes: decode (the DLQ for what cannot be used) ->
``fallback.on_receipt`` -> a fallback delivery where one is due -> the users' states saved, like
the router's events and under the same lock. Receipts of users whose digests are on their way to
the broker wait for that flush to end: until then the stored states still hold what was sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.contracts.avro_codec import AvroCodec, DecodeError
from streams.core.clock import Clock
from streams.core.routing.fallback import on_receipt
from streams.core.routing.validation import InvalidRecord, decode_receipt, validate_receipt
from streams.core.settings import RouterSettings
from streams.faust_ext import current_event
from streams.worker.dead_letters import DeadLetters
from streams.worker.delivery_producer import DeliveryProducer
from streams.worker.event_router import EventRouter, by_partition
from streams.worker.metrics import PipelineMetrics
from streams.worker.replay_gate import ReplayGate
from streams.worker.user_batch import UserBatch
from streams.worker.user_store import UserStore


class ReceiptRouter:
    def __init__(self, store: UserStore, codec: AvroCodec, deliveries: DeliveryProducer,
                 dead_letters: DeadLetters, metrics: PipelineMetrics, rules: RouterSettings,
                 clock: Clock, gate: ReplayGate, router: EventRouter,
                 generation: Callable[[], int]) -> None:
        self.store, self.codec, self.deliveries = store, codec, deliveries
        self.dead_letters, self.metrics, self.rules, self.clock = dead_letters, metrics, rules, clock
        self.gate, self.router, self._generation = gate, router, generation

    async def route_batch(self, events: list[Any]) -> list[Any]:
        """Join the receipts and return them, to be acked."""
        router = self.router
        # The registry away: the batch waits for its schemas as the router's do (schema_wait.py).
        await router.schemas.ready(event.message.value for event in events)
        users = {event.message.key for event in events}
        while True:
            async with router.lock:  # flushes begin under it: the check below cannot go stale
                if not router.parking.flushing_any(users):
                    now = self.clock.now_ms()
                    for partition, receipts in by_partition(events, self._generation()).items():
                        await self._route_partition(partition, receipts, now)
                    return events
            await router.parking.idle.wait()

    async def _route_partition(self, partition: int, events: list[Any], now: int) -> None:
        current_event.point_at(events[-1])  # table writes go to this partition
        self.gate.routed(partition, events[-1].message.offset + 1)
        counters = self.metrics.counters
        with UserBatch(self.store, partition) as users:
            for event in events:
                message = event.message
                try:
                    _, record = self.codec.decode(message.value)
                    receipt = decode_receipt(record)
                    validate_receipt(receipt, message.key)
                except (DecodeError, InvalidRecord) as exc:
                    await self.dead_letters.write(message, exc)
                    continue
                key = message.key
                result = on_receipt(users.state(key), users.prefs(key), receipt, now, self.rules)
                for delivery in result.deliveries:
                    self.deliveries.send(delivery)
                counters.update(result.counters)
                users.note(key, result.changed, result.due_changed)
