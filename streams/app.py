"""The Faust worker: keeps preferences, routes events, flushes due holds.

Topology (all keyed by user_id and co-partitioned, so every table read is local):

    notifications.preferences ─► preferences agent ─► table `preferences`
    notifications.events ──────► router agent ─► deliveries.<channel> / dlq
                                      │  table `users`: dedupe memory, throttle windows, holds
    <app id>-ticks ◄── timer (each worker, its own partitions in turn)
          └──────────► tick agent ─► due holds ─► deliveries.<channel>

Events are routed in batches of what is already queued, acked after routing. Deliveries and the
users table's changelog go out through a librdkafka producer (delivery_producer.py), flushed
before every offset commit; the DLQ, ticks and the preferences changelog through Faust's own.

Why ticks: Faust writes a table's changelog to the partition of the event being processed, and
refuses writes outside a stream. A timer that flushed holds directly would have no partition to
write to; a tick on the same partition number as the user's events gives the flush a proper
stream context, so the changelog and the restore after a crash stay right.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import faust
import orjson
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient
from faust.streams import _current_event  # the context var behind faust.current_event()

from .avro_codec import AvroCodec, DecodeError
from .changelog_table import ProducerChangelogTable
from .clock import Clock
from .connection.kafka import kafka_access
from .delivery_producer import AckTracker, DeliveryProducer
from .due_index import DueIndex
from .flush_parking import FlushParking
from .fresh_partition_seek import seek_uncommitted_to_beginning
from .lean_consumer import LeanDrainConsumer
from .lean_producer import LeanBufferProducer
from .metrics import PipelineMetrics, prometheus_gauges
from .model import Preferences, dead_letter
from .queued_events import take_queued
from .raw_schema import RawSchema
from .rocksdb_memory import RocksDBMemory, SharedMemoryTable
from .routing.router import flush_due, next_due_ms, route
from .routing.state import UserState
from .routing.validation import (
    InvalidRecord,
    decode_event,
    decode_preferences,
    validate,
    validate_preferences,
)
from .schemas import load_schema, subject_for
from .settings import RouterSettings
from .state_cache import StateCache
from .tick_rotation import TickRotation
from .topics import CHANNELS, deliveries_topic
from .worker_settings import WorkerSettings

log = logging.getLogger("notipipe.worker")


# Per DB; the block cache is the worker's shared one (rocksdb_memory.py).
ROCKSDB_OPTIONS = {"write_buffer_size": 16 * 1024**2, "max_write_buffer_number": 2}


# Users whose due holds are flushed per hold of the state lock (see _flush_partition).
FLUSH_CHUNK_USERS = 32


def _event_user(event: Any) -> bytes:
    return event.message.key


class TopologyError(RuntimeError):
    """The topics the worker needs are missing or not co-partitioned."""


def discover_partitions(ws: WorkerSettings, events: str, preferences: str, ticks: str) -> int:
    """Partition count of the co-partitioned inputs; creates the ticks topic to match."""
    admin = AdminClient({**kafka_access("worker", ws.bootstrap_servers).confluent_config(), "log_level": 0})
    try:
        topics = admin.list_topics(timeout=15).topics
    except Exception as exc:  # KafkaException: broker unreachable
        raise TopologyError(f"cannot reach Kafka at {ws.bootstrap_servers}: {exc}. Is it running "
                            "(`notipipe stack status`)? Set NOTIPIPE_BOOTSTRAP_SERVERS otherwise.") from exc
    missing = [t for t in (events, preferences) if t not in topics]
    if missing:
        raise TopologyError(f"topics {missing} do not exist: create them with `notipipe stack up` "
                            "(or your cluster's tooling) before starting workers")
    counts = {t: len(topics[t].partitions) for t in (events, preferences)}
    if len(set(counts.values())) != 1:
        raise TopologyError(f"{events} and {preferences} must have the same partition count to be "
                            f"co-partitioned, found {counts}")
    partitions = counts[events]
    if ticks not in topics:
        future = admin.create_topics([NewTopic(ticks, num_partitions=partitions, replication_factor=-1,
                                               config={"retention.ms": str(3600 * 1000)})])[ticks]
        try:
            future.result(30)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    elif len(topics[ticks].partitions) != partitions:
        raise TopologyError(f"{ticks} has {len(topics[ticks].partitions)} partitions, {events} has "
                            f"{partitions}: delete {ticks} (it holds no state) and restart")
    return partitions


class Pipeline:
    def __init__(self, ws: WorkerSettings, rs: RouterSettings, clock: Clock) -> None:
        self.ws, self.rs, self.clock = ws, rs, clock
        prefix = ws.topic_prefix
        self.events_name = f"{prefix}notifications.events"
        self.prefs_name = f"{prefix}notifications.preferences"
        self.dlq_name = f"{prefix}notifications.dlq"
        self.ticks_name = f"{ws.app_id}-ticks"
        self.kafka = kafka_access("worker", ws.bootstrap_servers)
        self.partitions = discover_partitions(ws, self.events_name, self.prefs_name, self.ticks_name)
        self.metrics = PipelineMetrics()
        self.due = DueIndex()
        self._index_stale = True
        self._targets_stale = True
        self._catching_up: dict[int, int] = {}  # partition -> offset the replay must reach
        self._routed_upto: dict[int, int] = {}  # partition -> next offset the router will see
        self._prefs_cache: dict[bytes, Preferences | None] = {}
        self.states = StateCache(ws.state_cache_users, ws.state_cache_mb * 1024**2)
        self.rocksdb_memory = RocksDBMemory(ws.rocksdb_memory_mb * 1024**2)
        # The router and the tick agent both read, change and write users' state, and each may
        # await in between (a DLQ write, the digests' broker acks): one at a time, or the later
        # write would undo the other's.
        self._state_lock = asyncio.Lock()
        # Events of users whose digests wait for the broker's ack (flush_parking.py).
        self._parking: FlushParking[Any] = FlushParking(_event_user)
        self._ack_routed: Callable[[Any], Awaitable[bool]] | None = None  # the router stream's ack

        self.codec = AvroCodec(SchemaRegistryClient({"url": ws.registry_url}), auto_register=False)
        self.codec.add_subject(subject_for(self.events_name), load_schema("notification_event"))
        self.codec.add_subject(subject_for(self.prefs_name), load_schema("user_preferences"))
        self.codec.add_subject(subject_for(self.dlq_name), load_schema("dead_letter"))
        self.delivery_subjects = {}
        for channel in CHANNELS:
            subject = subject_for(deliveries_topic(channel, prefix))
            self.codec.add_subject(subject, load_schema("delivery"))
            self.delivery_subjects[channel] = subject

        self.deliveries = DeliveryProducer(
            ws.bootstrap_servers, self.codec, self.delivery_subjects,
            {ch: deliveries_topic(ch, prefix) for ch in CHANNELS}, client_id=ws.app_id,
            linger_ms=ws.delivery_linger_ms, kafka_config=self.kafka.producer_config())

        self.app = app = faust.App(
            ws.app_id,
            **self.kafka.faust_app_kwargs(),
            store="rocksdb://",
            datadir=str(ws.data_dir),
            web_port=ws.web_port,
            web_host="127.0.0.1",
            web_bind="127.0.0.1",
            topic_partitions=self.partitions,
            topic_replication_factor=1,
            topic_disable_leader=True,
            consumer_auto_offset_reset="earliest",
            key_serializer="raw",
            value_serializer="raw",
            producer_acks=-1,
            broker_commit_interval=1.0,
            # Changelog and tick records share requests instead of one request each.
            producer_linger=0.005,
            # A killed worker's partitions move on after this long, not Faust's default 60 s.
            broker_session_timeout=ws.session_timeout_s,
            broker_heartbeat_interval=max(1.0, ws.session_timeout_s / 4),
            table_standby_replicas=0,
        )
        # Before anything creates the consumer or the producer (both are built on first use).
        app.transport.Consumer = LeanDrainConsumer.with_fetch(ws.fetch_min_bytes,
                                                              ws.fetch_max_wait_ms)
        app.transport.Producer = LeanBufferProducer
        # Keys and values stay bytes; events are built without the serializer registry.
        self.events_topic = app.topic(self.events_name, schema=RawSchema())
        self.prefs_topic = app.topic(self.prefs_name, schema=RawSchema())
        self.dlq_topic = app.topic(self.dlq_name, schema=RawSchema())
        self.ticks_topic = app.topic(self.ticks_name, schema=RawSchema())
        # key_type bytes: keys stay the raw user id (Faust derives the serializers from the types).
        # RocksDB: a worker opens one DB per table per partition it owns; all of them share one
        # block cache and memtable budget (rocksdb_memory.py), so memory does not grow with the
        # partitions owned or with the data.
        table = {"partitions": self.partitions, "key_type": bytes, "options": ROCKSDB_OPTIONS,
                 "beacon": app.beacon}
        # Preferences as JSON made by orjson (raw bytes to Faust), read straight from RocksDB on
        # a cache miss: with many users most events miss, and Faust's own read path cost more
        # than routing the event. Faust's json codec wrote the same JSON, so tables and
        # changelogs written before read the same.
        self.preferences = app.tables.add(SharedMemoryTable(
            app, name="preferences", **table, value_type=bytes))
        self.preferences.use_memory(self.rocksdb_memory)
        # One record per user (dedupe memory, throttle windows, pending holds): a single changelog
        # write per change is atomic, so a crash can never keep the "seen" of an event but lose
        # the hold it went into.
        # Values are JSON made by orjson (raw bytes to Faust): the state is encoded and decoded
        # for every event, and orjson does it several times faster than Faust's json codec.
        # Its changelog goes out through the librdkafka producer (changelog_table.py).
        self.users = app.tables.add(ProducerChangelogTable(
            app, name="users", **table, value_type=bytes))
        self.users.use_memory(self.rocksdb_memory)
        self.users.use_producer(self.deliveries)

        app.agent(self.prefs_topic, name="preferences")(self._preferences_agent)
        app.agent(self.events_topic, name="router")(self._router_agent)
        app.agent(self.ticks_topic, name="ticks")(self._tick_agent)
        self._tick_rotation = TickRotation(self.partitions)
        app.timer(interval=ws.tick_interval_s / self.partitions)(self._send_tick)
        self._add_pages()
        self.deliveries.attach_to_commits(app.producer)
        app.on_partitions_assigned.connect(self._on_assigned)
        seek_uncommitted_to_beginning(
            app.consumer, {self.events_name, self.prefs_name, self.ticks_name})

    # --- agents -------------------------------------------------------------------------------

    async def _preferences_agent(self, stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            if message.value is None:  # tombstone: back to defaults
                if message.key in self.preferences:
                    del self.preferences[message.key]
                self._prefs_cache.pop(message.key, None)
                self.metrics.inc("preferences", "reset")
                continue
            try:
                _, record = self.codec.decode(message.value)
                validate_preferences(decode_preferences(record), message.key)
            except (DecodeError, InvalidRecord) as exc:
                await self._dead_letter(message, exc)
                continue
            self.preferences[message.key] = orjson.dumps(record)
            self._prefs_cache.pop(message.key, None)
            self.metrics.inc("preferences", "stored")

    async def _router_agent(self, stream: Any) -> None:
        # Events are taken as they arrive and routed in batches: whatever is already waiting in
        # the stream's queue (up to batch_max), so a batch costs no extra latency when the worker
        # keeps up and amortises the per-batch work when it does not. Acks are manual and come
        # after the routing, so every committable offset has been routed.
        manual = stream.noack()
        self._ack_routed = manual.ack  # parked events are acked by the flush that releases them
        waiting = manual.channel.queue
        batch: list[Any] = []
        async for event in manual.events():
            batch.append(event)
            take_queued(self.app, waiting, batch, self.ws.batch_max)  # the rest, in one go
            for done in await self._route_admitted(batch):
                await manual.ack(done)
            batch = []
            self.deliveries.poll()

    async def _tick_agent(self, stream: Any) -> None:
        async for event in stream.events():
            await self._flush_partition(event.message.partition)

    async def _send_tick(self) -> None:
        partition = self._tick_rotation.next(self._owned_partitions())
        if partition is not None:
            await self.ticks_topic.send(partition=partition, key=None, value=b"")

    def _owned_partitions(self) -> list[int]:
        """The events partitions this worker owns now (the same numbers in every topic)."""
        return sorted(tp.partition for tp in self.app.assignor.assigned_actives()
                      if tp.topic == self.events_name)

    # --- routing ------------------------------------------------------------------------------

    async def _route_admitted(self, batch: list[Any]) -> list[Any]:
        """Route the batch's events that need not wait for a flush (see flush_parking.py);
        returns them, to be acked. The others are parked."""
        async with self._state_lock:
            await self._route_parked()  # normally done by the flush; left here if it failed
            ready = self._parking.admit(batch)
            if len(ready) < len(batch):
                self.metrics.inc("events", "parked", by=len(batch) - len(ready))
            if ready:
                await self._route_batch(ready)
            return ready

    async def _route_parked(self) -> None:
        """Route and ack the parked events whose users' flush has ended. The state lock held."""
        ready = self._parking.release()
        if not ready:
            return
        caller_event = _current_event.get(None)
        try:
            await self._route_batch(ready)
        finally:
            _current_event.set(caller_event)  # _route_batch pointed it at the parked events
        assert self._ack_routed is not None  # set by the router agent, the only one that parks
        for done in ready:
            await self._ack_routed(done)

    async def _route_batch(self, events: list[Any]) -> None:
        # Events fetched before a rebalance may belong to a partition another worker now owns;
        # that worker reads them again from the committed offset. Faust's stream skips them the
        # same way when it yields them.
        generation = self.app.consumer_generation_id
        by_partition: dict[int, list[Any]] = {}
        for event in events:
            if event.message.generation_id == generation:
                by_partition.setdefault(event.message.partition, []).append(event)
        now = self.clock.now_ms()
        for partition, partition_events in by_partition.items():
            # Table reads and writes go to the partition of the current event (Faust's
            # convention): point it at this partition before touching its users' state.
            _current_event.set(weakref.ref(partition_events[-1]))
            await self._route_partition(partition, [e.message for e in partition_events], now)

    async def _route_partition(self, partition: int, messages: list[Any], now: int) -> None:
        last = messages[-1].offset + 1
        self._routed_upto[partition] = last
        target = self._catching_up.get(partition)
        if target is not None and last >= target:
            del self._catching_up[partition]
        states: dict[bytes, UserState] = {}
        try:
            await self._route_messages(partition, messages, now, states)
        except BaseException:
            self.states.discard(states)  # changed in place, maybe not stored: read them again
            raise

    async def _route_messages(self, partition: int, messages: list[Any], now: int,
                              states: dict[bytes, UserState]) -> None:
        changed: set[bytes] = set()
        holds_changed: set[bytes] = set()
        counters = self.metrics.counters
        counters[("events", "routed")] += len(messages)
        # The real wall clock, not self.clock: the age is against the records' timestamps.
        taken_s, observe_age = time.time(), self.metrics.event_age.observe
        for message in messages:
            if message.timestamp is not None:
                observe_age(taken_s - message.timestamp)
            try:
                _, record = self.codec.decode(message.value)
                event = decode_event(record)
                validate(event, message.key)
            except (DecodeError, InvalidRecord) as exc:
                await self._dead_letter(message, exc)
                continue
            key = message.key
            state = states.get(key)
            if state is None:
                state = states[key] = self._load_state(partition, key)
            prefs = self._prefs(partition, key)
            result = route(event, prefs, state, now, (partition, message.offset), self.rs)
            for delivery in result.deliveries:
                self.deliveries.send(delivery)
            counters.update(result.counters)
            if result.changed:
                changed.add(key)
            if result.holds_changed:
                holds_changed.add(key)
        for key in changed:  # one state write per user per batch
            self._save_state(partition, key, states[key])
        for key in holds_changed:
            self.due.set(partition, key, next_due_ms(states[key]))

    async def _flush_partition(self, partition: int) -> None:
        async with self._state_lock:
            if self._targets_stale:
                await self._refresh_replay_targets()
            if partition in self._catching_up:
                return
            if self._index_stale:
                self._rebuild_index()
        # A few users at a time: the router waits for the state lock at most that long, and
        # events keep their latency while a tick flushes thousands of holds.
        now = self.clock.now_ms()
        generation = self.app.consumer_generation_id
        while generation == self.app.consumer_generation_id:  # stop if a rebalance intervened
            if not await self._flush_users(partition, now):
                return

    async def _flush_users(self, partition: int, now: int) -> bool:
        """Flush the next few due users of the partition; False when none was due."""
        async with self._state_lock:
            await self._route_parked()  # left by a flush that failed, if the router has not yet
            flushed: dict[bytes, UserState] = {}
            acks = AckTracker()
            try:
                for key in self.due.pop_due(partition, now, limit=FLUSH_CHUNK_USERS):
                    state = self._load_state(partition, key)
                    result = flush_due(state, self._prefs(partition, key), now, self.rs)
                    for delivery in result.deliveries:
                        self.deliveries.send(delivery, acks)
                    self.metrics.add(result.counters)
                    flushed[key] = state
            except BaseException:
                self.states.discard(flushed)
                raise
            if not flushed:
                return False
            # These users' stored states still hold what was just sent: their events are
            # parked until the new states are saved.
            self._parking.begin_flush(flushed.keys())
        # The broker must hold the digests before the states forget the holds: a crash in
        # between re-sends them with the same delivery_id, which the sinks absorb. The router
        # goes on meanwhile. If they fail, the stored states keep the holds, due again now.
        try:
            await self.deliveries.wait_acked(acks)
        except BaseException:
            self.states.discard(flushed)  # the stored states keep the holds: so must we
            for key in flushed:
                self.due.set(partition, key, now)
            self._parking.end_flush()
            raise
        async with self._state_lock:
            for key, state in flushed.items():
                self._save_state(partition, key, state)
                self.due.set(partition, key, next_due_ms(state))
            self._parking.end_flush()
            await self._route_parked()
        return True

    def _rebuild_index(self) -> None:
        # A full scan, once per rebalance: the index is derived data, the table is the truth.
        self.due.clear()
        for key, raw in self.users.items():
            value = orjson.loads(raw)
            if value.get("holds"):
                self.due.set(value["p"], key, next_due_ms(UserState.from_dict(value)))
        self._index_stale = False
        log.info("due index rebuilt: %d users with pending holds", len(self.due))

    async def _on_assigned(self, *args: Any, **kwargs: Any) -> None:
        # No I/O here: the rebalance waits for this handler, and asking the group coordinator
        # for offsets during the rebalance would wait for the rebalance. The next tick does it.
        self._index_stale = True
        self._targets_stale = True
        self._prefs_cache.clear()  # another worker may have changed what we held before
        self.states.clear()

    async def _refresh_replay_targets(self) -> None:
        partitions = self._owned_partitions()
        targets = await asyncio.get_running_loop().run_in_executor(
            None, self._replay_targets, partitions)
        self._catching_up = {p: end for p, end in targets.items()
                             if self._routed_upto.get(p, -1) < end}
        self._targets_stale = False
        if self._catching_up:
            log.info("holding flushes until events are replayed up to %s", self._catching_up)

    def _replay_targets(self, partitions: list[int]) -> dict[int, int]:
        """Partitions with events after the group's committed offset, and where they end now.

        After a crash those events are routed again; a hold must not be flushed before they are,
        or an event that belonged in a digest would go out after it, on its own.
        """
        tps = [TopicPartition(self.events_name, p) for p in partitions]
        admin = AdminClient({**self.kafka.confluent_config(), "log_level": 0})
        request = ConsumerGroupTopicPartitions(self.ws.app_id, tps)
        future = admin.list_consumer_group_offsets([request], require_stable=False)[self.ws.app_id]
        committed = {tp.partition: tp.offset for tp in future.result(30).topic_partitions}
        consumer = Consumer({**self.kafka.confluent_config(), "log_level": 0,
                             "group.id": f"{self.ws.app_id}-offsets-probe"})
        try:
            targets = {}
            for tp in tps:
                low, high = consumer.get_watermark_offsets(tp, timeout=30)
                start = committed.get(tp.partition, -1)
                if high > max(start, low):
                    targets[tp.partition] = high
            return targets
        finally:
            consumer.close()

    # --- state --------------------------------------------------------------------------------

    def _prefs(self, partition: int, key: bytes) -> Preferences | None:
        """Decoded preferences, cached: decoding them per event would cost more than routing.
        The preferences agent and every rebalance invalidate the cache."""
        cache = self._prefs_cache
        if key in cache:  # None is cached too: a user without preferences
            return cache[key]
        raw = self.preferences.get_raw(partition, key)
        prefs = decode_preferences(orjson.loads(raw)) if raw else None
        limit = self.ws.prefs_cache_users
        if limit:
            if len(cache) >= limit:
                cache.clear()  # crude, but O(1) per event and bounded
            cache[key] = prefs
        return prefs

    def _load_state(self, partition: int, key: bytes) -> UserState:
        state = self.states.get(key)
        if state is None:
            raw = self.users.get_raw(partition, key)
            state = UserState.from_dict(orjson.loads(raw) if raw else None)
            self.states.put(key, state, len(raw) if raw else 0)
        return state

    def _save_state(self, partition: int, key: bytes, state: UserState) -> None:
        if state.is_empty():
            self.states.resize(key, 0)
            if key in self.users:
                del self.users[key]
            return
        data = state.to_dict()
        data["p"] = partition  # lets the due index be rebuilt per partition from a scan
        value = orjson.dumps(data)
        self.states.resize(key, len(value))
        self.users.set_raw(partition, key, value)

    # --- output -------------------------------------------------------------------------------

    async def _dead_letter(self, message: Any, error: Exception) -> None:
        reason = getattr(error, "reason", "invalid")
        if isinstance(error, InvalidRecord):
            reason = error.dlq_reason
        record = dead_letter(source_topic=message.topic, source_partition=message.partition,
                             source_offset=message.offset, key=message.key, value=message.value,
                             reason=reason, error=str(error), failed_at=self.clock.now_ms())
        headers = [("notipipe.error.reason", reason.encode()),
                   ("notipipe.error.message", str(error)[:1000].encode()),
                   ("notipipe.source", f"{message.topic}/{message.partition}/{message.offset}".encode())]
        value = self.codec.encode(subject_for(self.dlq_name), record)
        fut = await self.dlq_topic.send(key=message.key, value=value, headers=headers)
        await fut  # a DLQ write must not be lost: wait for the broker before moving on
        self.metrics.inc("dlq", reason)
        log.warning("dead-lettered %s/%d/%d: %s", message.topic, message.partition, message.offset,
                    error)

    # --- web ----------------------------------------------------------------------------------

    def _memory_gauges(self) -> dict[str, float]:
        rocksdb = self.rocksdb_memory.usage()
        return {"state_cache_users": len(self.states),
                "state_cache_estimated_bytes": self.states.estimated_bytes,
                "rocksdb_cache_bytes": rocksdb["cache"],
                "rocksdb_memtable_bytes": rocksdb["memtables"]}

    def _add_pages(self) -> None:
        @self.app.page("/metrics")
        async def metrics(view: Any, request: Any) -> Any:
            text = self.metrics.prometheus() + prometheus_gauges(self._memory_gauges())
            return view.text(text, content_type="text/plain")

        @self.app.page("/counters")
        async def counters(view: Any, request: Any) -> Any:
            cache = {"users": len(self.states), "hits": self.states.hits,
                     "misses": self.states.misses, "estimated_bytes": self.states.estimated_bytes}
            return view.json({**self.metrics.as_dict(), "due_index_size": len(self.due),
                              "state_cache": cache, "rocksdb_memory": self.rocksdb_memory.usage(),
                              "clock_ms": self.clock.now_ms(),
                              "partitions": self._owned_partitions()})
