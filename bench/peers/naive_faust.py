"""Peer (c): the naive baseline, a straightforward per-event Faust agent with the same rules.

What someone writes first: for each event, decode, look the user up in tables, route, and
``await topic.send`` each delivery; one table for preferences and one for all router state
(holds included); a timer writes ticks so due holds are flushed in a stream context. Default
Faust settings otherwise: no logger tuning, no batching.

Settings: the NOTIPIPE_* variables of the worker (docs/configuration.md).
"""

from __future__ import annotations

import time
from typing import Any

import faust
from confluent_kafka.schema_registry import SchemaRegistryClient

from streams.connection.kafka import kafka_access
from streams.contracts.avro_codec import DecodeError
from streams.contracts.pipeline_codec import pipeline_codec
from streams.contracts.schemas import subject_for
from streams.core.routing.router import flush_due, next_due_ms, route
from streams.core.routing.state import UserState
from streams.core.routing.validation import InvalidRecord, decode_event, decode_preferences, validate
from streams.core.settings import RouterSettings
from streams.worker.due_index import DueIndex
from streams.worker.settings import WorkerSettings
from streams.worker.topology import discover_topology


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def build(ws: WorkerSettings, rs: RouterSettings) -> faust.App:
    topics = ws.topics
    topology = discover_topology(kafka_access("worker", ws.bootstrap_servers).confluent_config(),
                                 topics, ws.app_id)
    events_name, prefs_name, ticks_name = topics.events, topics.preferences, topology.ticks
    partitions = topology.partitions
    codec = pipeline_codec(SchemaRegistryClient({"url": ws.registry_url}), topics)
    subjects = {ch: subject_for(topic) for ch, topic in topics.all_deliveries().items()}

    app = faust.App(
        ws.app_id,
        **kafka_access("worker", ws.bootstrap_servers).faust_app_kwargs(),
        store="rocksdb://",
        datadir=str(ws.data_dir),
        web_port=ws.web_port,
        web_host="127.0.0.1",
        web_bind="127.0.0.1",
        topic_partitions=partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
    )
    events = app.topic(events_name)
    prefs_topic = app.topic(prefs_name)
    ticks = app.topic(ticks_name)
    out = {ch: app.topic(topic) for ch, topic in topics.all_deliveries().items()}
    table_schema = faust.Schema(key_serializer="raw", value_serializer="json")
    preferences = app.Table("preferences", partitions=partitions, schema=table_schema)
    users = app.Table("users", partitions=partitions, schema=table_schema)
    due = DueIndex()
    stale = {"index": True}

    async def send_all(deliveries: list) -> None:
        for d in deliveries:
            ch = d.topic_suffix
            await out[ch].send(key=d.user_id.encode(), value=codec.encode(subjects[ch], d.to_avro()))

    def user_prefs(key: bytes) -> Any:
        record = preferences.get(key)
        return decode_preferences(record) if record else None

    @app.agent(prefs_topic, name="preferences")
    async def on_preferences(stream: Any) -> None:
        async for key, value in stream.items():
            if value is None:
                preferences.pop(key, None)
                continue
            try:
                _, record = codec.decode(value)
                decode_preferences(record)
            except (DecodeError, InvalidRecord):
                continue
            preferences[key] = record

    @app.agent(events, name="router")
    async def on_event(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            try:
                _, record = codec.decode(message.value)
                ev = decode_event(record)
                validate(ev, message.key)
            except (DecodeError, InvalidRecord):
                continue
            state = UserState.from_dict(users.get(message.key))
            result = route(
                ev, user_prefs(message.key), state, now_ms(), (message.partition, message.offset), rs
            )
            await send_all(result.deliveries)
            if result.changed:
                users[message.key] = state.to_dict()
                if result.holds_changed:
                    due.set(message.partition, message.key, next_due_ms(state))

    @app.agent(ticks, name="ticks")
    async def on_tick(stream: Any) -> None:
        async for event in stream.events():
            partition = event.message.partition
            if stale["index"]:
                due.clear()
                for key, value in users.items():
                    state = UserState.from_dict(value)
                    if state.holds:
                        due.set(_partition_of(app, key, partitions), key, next_due_ms(state))
                stale["index"] = False
            now = now_ms()
            for key in due.pop_due(partition, now):
                state = UserState.from_dict(users.get(key))
                result = flush_due(state, user_prefs(key), now, rs)
                await send_all(result.deliveries)
                if result.changed:
                    users[key] = state.to_dict()
                due.set(partition, key, next_due_ms(state))

    @app.timer(interval=ws.tick_interval_s)
    async def send_ticks() -> None:
        for tp in app.assignor.assigned_actives():
            if tp.topic == events_name:
                await ticks.send(partition=tp.partition, key=None, value=b"")

    @app.on_partitions_assigned.connect
    async def on_assigned(*args: Any, **kwargs: Any) -> None:
        stale["index"] = True

    return app


def _partition_of(app: faust.App, key: bytes, partitions: int) -> int:
    from aiokafka.partitioner import DefaultPartitioner  # murmur2, as the producers use

    return DefaultPartitioner()(key, list(range(partitions)), list(range(partitions)))


def main() -> None:
    ws = WorkerSettings.from_env()
    ws.data_dir.mkdir(parents=True, exist_ok=True)
    app = build(ws, RouterSettings.from_env())
    faust.Worker(app, loglevel=ws.log_level.upper(), quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
