"""One router worker: a Faust app and the parts it runs. This module composes; it implements none.

Topology (all keyed by user_id and co-partitioned, so every table read is local):

    notifications.preferences ─► preferences agent ─► table `preferences`
    notifications.events ──────► router agent ─► deliveries.<channel> / dlq
                                      │  table `users`: dedupe memory, throttle windows, holds,
                                      │  pending fallbacks
    notifications.receipts ────► receipts agent ─► fallbacks ─► deliveries.<channel> / dlq
    <app id>-ticks ◄── timer (each worker, its own partitions in turn)
          └──────────► tick agent ─► due holds and fallbacks ─► deliveries.<channel>

Deliveries and the users table's changelog go out through a librdkafka producer, flushed before
every offset commit; the DLQ, ticks and the preferences changelog through Faust's own.

Why ticks: Faust writes a table's changelog to the partition of the event being processed, and
refuses writes outside a stream. A timer that flushed holds directly would have no partition to
write to; a tick on the same partition number as the user's events gives the flush a proper
stream context, so the changelog and the restore after a crash stay right.
"""

from __future__ import annotations

from typing import Any

import faust
from confluent_kafka.schema_registry import SchemaRegistryClient

from streams.connection.kafka import KafkaAccess
from streams.contracts.pipeline_codec import pipeline_codec
from streams.contracts.schemas import subject_for
from streams.core.clock import Clock
from streams.core.settings import RouterSettings
from streams.faust_ext.bounded_stop import bound_stop_wait
from streams.faust_ext.changelog_table import ProducerChangelogTable
from streams.faust_ext.commit_hook import flush_before_commits
from streams.faust_ext.partition_seek import seek_uncommitted_to_beginning
from streams.faust_ext.raw_schema import RawSchema
from streams.faust_ext.rocksdb_memory import RocksDBMemory, SharedMemoryTable
from streams.faust_ext.transport import use_worker_transport
from streams.worker.agents import Agents
from streams.worker.dead_letters import DeadLetters
from streams.worker.delivery_producer import DeliveryProducer
from streams.worker.event_router import EventRouter
from streams.worker.flusher import DueFlusher
from streams.worker.metrics import PipelineMetrics
from streams.worker.progress import RouterProgress
from streams.worker.receipt_router import ReceiptRouter
from streams.worker.replay_gate import ReplayGate, ReplayGates, kafka_replay_probe
from streams.worker.schema_wait import SchemaWait
from streams.worker.settings import WorkerSettings
from streams.worker.state_cache import StateCache
from streams.worker.topology import Topology
from streams.worker.user_store import UserStore
from streams.worker.web import add_pages

# Per RocksDB database; the block cache is the worker's shared one (rocksdb_memory.py).
ROCKSDB_OPTIONS = {"write_buffer_size": 16 * 1024**2, "max_write_buffer_number": 2}
# Seconds one registry request may take: the client's default is to wait for ever.
REGISTRY_TIMEOUT_S = 10


def faust_app(settings: WorkerSettings, topology: Topology, kafka: KafkaAccess) -> faust.App:
    return faust.App(
        settings.app_id,
        **kafka.faust_app_kwargs(),  # the brokers, and SASL_SSL with the worker's credentials
        store="rocksdb://",
        datadir=str(settings.data_dir),
        web_port=settings.web_port,
        web_host="127.0.0.1",
        web_bind="127.0.0.1",
        topic_partitions=topology.partitions,
        # Changelogs as replicated as the events topic (topology.py).
        topic_replication_factor=topology.replication_factor,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
        producer_acks=-1,
        broker_commit_interval=1.0,
        # Changelog and tick records share requests instead of one request each.
        producer_linger=0.005,
        # A killed worker's partitions move on after this long, not Faust's default 60 s.
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.session_timeout_s / 4),
        table_standby_replicas=0,
    )


class Worker:
    """Builds the worker from its settings and the topology found on the cluster (no I/O here:
    clients connect when the app starts)."""

    def __init__(self, settings: WorkerSettings, rules: RouterSettings, clock: Clock,
                 topology: Topology, kafka: KafkaAccess) -> None:
        topics = topology.topics
        self._events_topic = topics.events
        self.app = app = faust_app(settings, topology, kafka)
        use_worker_transport(app, settings.fetch_min_bytes, settings.fetch_max_wait_ms)
        bound_stop_wait(app, settings.stop_wait_s)
        self.metrics = metrics = PipelineMetrics()
        registry = SchemaRegistryClient({"url": settings.registry_url, "timeout": REGISTRY_TIMEOUT_S})
        self.codec = codec = pipeline_codec(registry, topics, settings.event_schema_version)
        self.progress = progress = RouterProgress(settings.stall_after_s)
        written = [subject_for(t) for t in (*topics.all_deliveries().values(), topics.dlq)]
        schemas = SchemaWait(codec, written, metrics, progress)
        self.deliveries = deliveries = DeliveryProducer(
            kafka.producer_config(), codec, topics.all_deliveries(), client_id=settings.app_id,
            linger_ms=settings.delivery_linger_ms)
        self.rocksdb_memory = RocksDBMemory(settings.rocksdb_memory_mb * 1024**2)
        self.users, self.preferences = self._tables(topology)
        self.users.use_producer(deliveries)
        self.store = store = UserStore(
            self.users, self.preferences,
            StateCache(settings.state_cache_users, settings.state_cache_mb * 1024**2),
            settings.prefs_cache_users)

        def generation() -> int:
            return app.consumer_generation_id

        events_gate = ReplayGate(kafka_replay_probe(kafka.confluent_config(), settings.app_id, topics.events))
        receipts_gate = ReplayGate(kafka_replay_probe(kafka.confluent_config(), settings.app_id,
                                                      topics.receipts))
        gate = ReplayGates(events_gate, receipts_gate)
        dlq_topic = app.topic(topics.dlq, schema=RawSchema())
        dead_letters = DeadLetters(codec, topics.dlq, self._sender(dlq_topic), clock, metrics)
        self.router = EventRouter(store, codec, deliveries, dead_letters, metrics, rules, clock,
                                  events_gate, generation, schemas, progress)
        self.receipts = ReceiptRouter(store, codec, deliveries, dead_letters, metrics, rules, clock,
                                      receipts_gate, self.router, generation)
        self.flusher = DueFlusher(store, deliveries, self.router, metrics, rules, clock, gate,
                                  self.owned_partitions, generation)
        ticks_topic = app.topic(topology.ticks, schema=RawSchema())
        agents = Agents(app, store, codec, self.router, self.receipts, self.flusher, dead_letters,
                        deliveries, metrics, ticks_topic, topology.partitions,
                        self.owned_partitions, settings.batch_max)
        # Keys and values stay bytes; events are built without the serializer registry.
        app.agent(app.topic(topics.preferences, schema=RawSchema()), name="preferences")(agents.preferences)
        app.agent(app.topic(topics.events, schema=RawSchema()), name="router")(agents.router_agent)
        app.agent(app.topic(topics.receipts, schema=RawSchema()), name="receipts")(agents.receipts)
        app.agent(ticks_topic, name="ticks")(agents.ticks)
        app.timer(interval=settings.tick_interval_s / topology.partitions)(agents.send_tick)
        add_pages(app, metrics, store, self.rocksdb_memory, clock, self.owned_partitions, progress)
        flush_before_commits(app.producer, metrics.timed_commit_flush(deliveries.flush_for_commit))

        async def on_assigned(*args: Any, **kwargs: Any) -> None:
            # No I/O here: the rebalance waits for this handler, and asking the group coordinator
            # for offsets during the rebalance would wait for the rebalance. The next tick does it.
            store.on_partitions_assigned()
            gate.mark_stale()
            metrics.inc("rebalances")

        app.on_partitions_assigned.connect(on_assigned)
        seek_uncommitted_to_beginning(app.consumer, {topics.events, topics.preferences, topics.receipts,
                                                     topology.ticks})

    def _tables(self, topology: Topology) -> tuple[ProducerChangelogTable, SharedMemoryTable]:
        # A worker opens one RocksDB per table per partition it owns; all of them share one block
        # cache and memtable budget (rocksdb_memory.py), so memory does not grow with the
        # partitions owned or with the data. Keys and values are raw bytes (JSON made by orjson:
        # several times faster than Faust's json codec, which wrote the same JSON before).
        app = self.app
        table = {"partitions": topology.partitions, "key_type": bytes, "value_type": bytes,
                 "options": ROCKSDB_OPTIONS, "beacon": app.beacon}
        # The users table's changelog goes out through the librdkafka producer (changelog_table.py).
        preferences = app.tables.add(SharedMemoryTable(app, name="preferences", **table))
        users = app.tables.add(ProducerChangelogTable(app, name="users", **table))
        for each in (users, preferences):
            each.use_memory(self.rocksdb_memory)
        return users, preferences

    @staticmethod
    def _sender(topic: Any) -> Any:
        async def send_and_wait(key: bytes | None, value: bytes, headers: list) -> None:
            sent = await topic.send(key=key, value=value, headers=headers)
            await sent  # a DLQ write must not be lost: wait for the broker before moving on
        return send_and_wait

    def owned_partitions(self) -> list[int]:
        """The events partitions this worker owns now (the same numbers in every topic)."""
        return sorted(tp.partition for tp in self.app.assignor.assigned_actives()
                      if tp.topic == self._events_topic)
