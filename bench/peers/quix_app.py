"""Peer (b): the same rules on Quix Streams, written as a Quix user would.

One StreamingDataFrame concatenates the co-partitioned events, preferences and ticks topics, so a
single stateful ``apply`` sees one key-scoped ``State`` per user (preferences and router state);
Quix keeps it in RocksDB with changelog topics and commits at-least-once. Deliveries go out with
``to_topic`` choosing the channel's topic. Quix has no timers, so a small thread watches an
in-memory due index and writes a tick keyed by the user to the ticks topic when the user's holds
fall due; the tick arrives on the user's partition and flushes them through the same ``apply``.

Decoding uses the project's AvroCodec (bytes in, not Quix's Avro deserializer) so that Avro costs
the same in every system; what differs is the framework around the rules.

Runs in its own environment (Quix Streams pins an older confluent-kafka): see
bench/peers/quix-requirements.txt and bench/systems.py.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient
from quixstreams import Application, message_context
from quixstreams.kafka.configuration import ConnectionConfig
from quixstreams.models import TopicConfig
from quixstreams.models.serializers import Serializer

from streams.connection.kafka import kafka_access
from streams.contracts.avro_codec import DecodeError
from streams.contracts.delivery_avro import DeliveryEncoder
from streams.contracts.pipeline_codec import pipeline_codec
from streams.contracts.schemas import subject_for
from streams.core.routing.router import flush_due, next_due_ms, route
from streams.core.routing.state import UserState
from streams.core.routing.validation import InvalidRecord, decode_event, decode_preferences, validate
from streams.core.settings import RouterSettings
from streams.worker.settings import WorkerSettings

log = logging.getLogger("bench.quix_app")


class _Encoded(Serializer):
    """Values reach ``to_topic`` as (channel, Avro bytes): write the bytes."""

    def __call__(self, value, ctx):  # noqa: ANN001, ANN204
        return value[1]


class TickScheduler(threading.Thread):
    """Writes a tick keyed by user_id when the user's earliest hold is due."""

    def __init__(self, producer: Producer, topic: str, interval_s: float) -> None:
        super().__init__(daemon=True)
        self.producer, self.topic, self.interval_s = producer, topic, interval_s
        self._heap: list[tuple[int, bytes]] = []
        self._due: dict[bytes, int] = {}
        self._lock = threading.Lock()

    def set(self, key: bytes, due_ms: int | None) -> None:
        with self._lock:
            if due_ms is None:
                self._due.pop(key, None)
            elif self._due.get(key) != due_ms:
                self._due[key] = due_ms
                heapq.heappush(self._heap, (due_ms, key))

    def run(self) -> None:
        while True:
            time.sleep(self.interval_s)
            now = time.time_ns() // 1_000_000
            keys = []
            with self._lock:
                while self._heap and self._heap[0][0] <= now:
                    due, key = heapq.heappop(self._heap)
                    if self._due.get(key) == due:
                        del self._due[key]
                        keys.append(key)
            for key in keys:
                self.producer.produce(self.topic, b"", key)
            self.producer.poll(0)


def build(ws: WorkerSettings, rs: RouterSettings) -> Application:
    topics = ws.topics
    kafka = kafka_access("worker", ws.bootstrap_servers)
    events_name, prefs_name, ticks_name = topics.events, topics.preferences, topics.ticks(ws.app_id)
    codec = pipeline_codec(SchemaRegistryClient({"url": ws.registry_url}), topics)
    out_subject = {ch: subject_for(topic) for ch, topic in topics.all_deliveries().items()}

    app = Application(
        broker_address=ConnectionConfig.from_librdkafka_dict(kafka.confluent_config(), ignore_extras=True),
        consumer_group=ws.app_id,
        auto_offset_reset="earliest",
        commit_interval=1.0,
        state_dir=str(ws.data_dir / "state"),
        loglevel="INFO",
        # Joined topics are read in timestamp order from a buffer that is fed by
        # consume(10000, consumer_poll_timeout): the 1 s default adds up to 1 s of
        # latency at moderate rates, so a user who cares about latency lowers it.
        consumer_poll_timeout=0.02,
    )
    raw = {"key_deserializer": "bytes", "value_deserializer": "bytes"}
    events = app.topic(events_name, **raw)
    prefs = app.topic(prefs_name, **raw)
    # The ticks topic must be co-partitioned with events: same partition count.
    admin = AdminClient(kafka.confluent_config())
    partitions = len(admin.list_topics(events_name, timeout=15).topics[events_name].partitions)
    ticks = app.topic(ticks_name, **raw, config=TopicConfig(num_partitions=partitions, replication_factor=1))
    out = {
        ch: app.topic(topic, key_serializer="bytes", value_serializer=_Encoded())
        for ch, topic in topics.all_deliveries().items()
    }

    tick_producer = Producer(
        {**kafka.confluent_config(), "partitioner": "murmur2_random", "linger.ms": 5}
    )
    scheduler = TickScheduler(tick_producer, ticks_name, ws.tick_interval_s)

    encoder = DeliveryEncoder(codec, out_subject)  # the worker's delivery encoder (same bytes)

    def encoded(deliveries: list) -> list[tuple[str, bytes]]:
        return [(d.topic_suffix, encoder.encode(d)) for d in deliveries]

    def process(value, key, timestamp, headers, state):  # noqa: ANN001, ANN202
        ctx = message_context()
        topic = ctx.topic
        if topic == prefs_name:
            if value is None:
                state.delete("prefs")
                return ()
            try:
                _, record = codec.decode(value)
                decode_preferences(record)
            except (DecodeError, InvalidRecord):
                return ()  # the project's worker dead-letters it; not part of this workload
            state.set("prefs", record)
            return ()
        raw_prefs = state.get("prefs")
        user_prefs = decode_preferences(raw_prefs) if raw_prefs else None
        user_state = UserState.from_dict(state.get("user"))
        now = time.time_ns() // 1_000_000
        if topic == ticks_name:
            result = flush_due(user_state, user_prefs, now, rs)
            if result.changed:
                state.set("user", user_state.to_dict())
            scheduler.set(key, next_due_ms(user_state))
            return encoded(result.deliveries)
        try:
            _, record = codec.decode(value)
            event = decode_event(record)
            validate(event, key)
        except (DecodeError, InvalidRecord):
            return ()
        result = route(event, user_prefs, user_state, now, (ctx.partition, ctx.offset), rs)
        if result.changed:
            state.set("user", user_state.to_dict())
            if result.holds_changed:
                scheduler.set(key, next_due_ms(user_state))
        return encoded(result.deliveries)

    sdf = app.dataframe(events).concat(app.dataframe(prefs)).concat(app.dataframe(ticks))
    sdf = sdf.apply(process, stateful=True, expand=True, metadata=True)
    sdf.to_topic(lambda value, key, timestamp, headers: out[value[0]])
    scheduler.start()
    return app


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = build(WorkerSettings.from_env(), RouterSettings.from_env())
    app.run()


if __name__ == "__main__":
    main()
