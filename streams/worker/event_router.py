"""The router's hot path: a batch of consumed events in, deliveries out, users' states saved.

One event travels: the router agent (``agents.py``) -> ``EventRouter.route_batch`` ->
``_route_partition`` -> ``streams.core.routing.route``, the pure rules. Everything here is the
I/O around that call: decoding, the DLQ, the users' states, the order with respect to flushes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from streams.contracts.avro_codec import AvroCodec, DecodeError
from streams.core.clock import Clock
from streams.core.routing.router import route
from streams.core.routing.validation import InvalidRecord, decode_event, validate
from streams.core.settings import RouterSettings
from streams.faust_ext import current_event
from streams.worker.dead_letters import DeadLetters
from streams.worker.delivery_producer import DeliveryProducer
from streams.worker.flush_parking import FlushParking
from streams.worker.metrics import PipelineMetrics
from streams.worker.progress import RouterProgress
from streams.worker.replay_gate import ReplayGate
from streams.worker.schema_wait import SchemaWait
from streams.worker.user_batch import UserBatch
from streams.worker.user_store import UserStore


def event_user(event: Any) -> bytes:
    return event.message.key


def by_partition(events: list[Any], generation: int) -> dict[int, list[Any]]:
    """The events of the consumer's current generation, by partition. Events fetched before a
    rebalance may belong to a partition another worker now owns; that worker reads them again
    from the committed offset. Faust's stream skips them the same way when it yields them."""
    grouped: dict[int, list[Any]] = {}
    for event in events:
        if event.message.generation_id == generation:
            grouped.setdefault(event.message.partition, []).append(event)
    return grouped


class EventRouter:
    def __init__(self, store: UserStore, codec: AvroCodec, deliveries: DeliveryProducer,
                 dead_letters: DeadLetters, metrics: PipelineMetrics, rules: RouterSettings,
                 clock: Clock, gate: ReplayGate, generation: Callable[[], int],
                 schemas: SchemaWait, progress: RouterProgress) -> None:
        self.store, self.codec, self.deliveries = store, codec, deliveries
        self.dead_letters, self.metrics, self.rules, self.clock = dead_letters, metrics, rules, clock
        self.gate, self._generation = gate, generation
        # Schemas first, outside the lock: while the registry is away the batch waits here, and
        # the tick flushes go on (schema_wait.py). Progress is what /health reports.
        self.schemas, self.progress = schemas, progress
        # The router and the flusher both read, change and write users' state, and each may
        # await in between (a DLQ write, the digests' broker acks): one at a time, or the later
        # write would undo the other's.
        self.lock = asyncio.Lock()
        # Events of users whose digests wait for the broker's ack (flush_parking.py).
        self.parking: FlushParking[Any] = FlushParking(event_user)
        self.ack: Callable[[Any], Awaitable[Any]] | None = None  # the router stream's, for parked events

    async def route_batch(self, events: list[Any]) -> list[Any]:
        """Route the events that need not wait for a flush and return them, to be acked; the
        others are parked until it ends (flush_parking.py)."""
        await self.schemas.ready(event.message.value for event in events)
        self.progress.batch_started()
        try:
            ready = await self._route_batch(events)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.progress.batch_failed(exc)
            raise
        self.progress.batch_done(len(ready))
        return ready

    async def _route_batch(self, events: list[Any]) -> list[Any]:
        async with self.lock:
            await self.route_parked()  # normally done by the flush; left here if it failed
            ready = self.parking.admit(events)
            if len(ready) < len(events):
                self.metrics.inc("events", "parked", by=len(events) - len(ready))
            now = self.clock.now_ms()
            for partition, partition_events in by_partition(ready, self._generation()).items():
                await self._route_partition(partition, partition_events, now)
            return ready

    async def route_parked(self) -> None:
        """Route and ack the parked events whose users' flush has ended. The lock is held."""
        ready = self.parking.release()
        if not ready:
            return
        now = self.clock.now_ms()
        with current_event.kept():  # the flush that called this writes on its own partition after
            for partition, partition_events in by_partition(ready, self._generation()).items():
                await self._route_partition(partition, partition_events, now)
        assert self.ack is not None  # set by the router agent, the only one that parks
        for done in ready:
            await self.ack(done)

    def _send_last(self, delivery: Any, events: int, oldest_s: float | None) -> None:
        """The batch's last delivery; once the broker has it, all before it are sent too."""
        if oldest_s is None:
            self.deliveries.send(delivery)
            return
        observe = self.metrics.delivery_latency.observe
        self.deliveries.send(delivery, on_acked=lambda: observe(time.time() - oldest_s, events))

    async def _route_partition(self, partition: int, events: list[Any], now: int) -> None:
        # Table writes go to the partition of the current event (Faust's convention).
        current_event.point_at(events[-1])
        self.gate.routed(partition, events[-1].message.offset + 1)
        counters = self.metrics.counters
        counters[("events", "routed")] += len(events)
        # The real wall clock, not self.clock: the age is against the records' timestamps.
        taken_s, observe_age = time.time(), self.metrics.event_age.observe
        send = self.deliveries.send
        # Deliveries go out as they are made, but for the last one, held back until the batch is
        # done: the broker's ack of it dates the batch's deliveries (delivery_latency).
        last = None
        sent_from = 0  # events that made deliveries; the oldest one's timestamp dates the batch
        oldest_s: float | None = None
        with UserBatch(self.store, partition) as users:
            for event in events:
                message = event.message
                if message.timestamp is not None:
                    observe_age(taken_s - message.timestamp)
                try:
                    _, record = self.codec.decode(message.value)
                    notification = decode_event(record)
                    validate(notification, message.key)
                except (DecodeError, InvalidRecord) as exc:
                    await self.dead_letters.write(message, exc)
                    continue
                key = message.key
                result = route(notification, users.prefs(key), users.state(key), now,
                               (partition, message.offset), self.rules)
                if result.deliveries:
                    for delivery in result.deliveries:
                        if last is not None:
                            send(last)
                        last = delivery
                    sent_from += 1
                    if oldest_s is None and message.timestamp is not None:
                        oldest_s = message.timestamp
                counters.update(result.counters)
                users.note(key, result.changed, result.holds_changed)
            if last is not None:
                self._send_last(last, sent_from, oldest_s)
