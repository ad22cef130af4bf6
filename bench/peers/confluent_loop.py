"""Peer (a): the same rules as a plain confluent-kafka loop with rocksdict state.

consume a batch → decode → route (streams.core.routing, the project's pure rules) → produce deliveries
through librdkafka → write the batch's changed state once per key to RocksDB and to a compacted
changelog topic → commit offsets after the producer has flushed (at-least-once). Due holds are
flushed from an in-memory due index every tick. On assignment a partition's state is restored
from the changelog, so a second process or a rebalance keeps the rules right.

This is what "the practical limit for Python" means here: no framework, batch-at-a-time, C does
the batching of every produce. It is a benchmark peer, not a supported runtime.

Settings: the NOTIPIPE_* variables of the worker (docs/configuration.md).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import signal
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient
from rocksdict import Options, Rdict, WriteBatch

from streams.connection.kafka import kafka_access
from streams.contracts.avro_codec import DecodeError
from streams.contracts.delivery_avro import DeliveryEncoder
from streams.contracts.pipeline_codec import pipeline_codec
from streams.contracts.schemas import subject_for
from streams.core.model import Preferences, dead_letter
from streams.core.routing.router import flush_due, next_due_ms, route
from streams.core.routing.state import UserState
from streams.core.routing.validation import InvalidRecord, decode_event, decode_preferences, validate
from streams.core.settings import RouterSettings
from streams.worker.due_index import DueIndex
from streams.worker.settings import WorkerSettings

log = logging.getLogger("bench.confluent_loop")

PREFS, USERS = b"p:", b"u:"
COMMIT_INTERVAL_S = 1.0
PREFS_CACHE_MAX = 200_000


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Loop:
    def __init__(self, ws: WorkerSettings, rs: RouterSettings) -> None:
        self.ws, self.rs = ws, rs
        topics = ws.topics
        self.events, self.prefs_topic, self.dlq = topics.events, topics.preferences, topics.dlq
        self.changelog = f"{ws.app_id}-state-changelog"
        self.codec = pipeline_codec(SchemaRegistryClient({"url": ws.registry_url}), topics)
        self.out_topic = topics.all_deliveries()
        self.out_subject = {ch: subject_for(topic) for ch, topic in self.out_topic.items()}
        self.encoder = DeliveryEncoder(self.codec, self.out_subject)  # the worker's (same bytes)
        self._create_changelog()
        ws.data_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(ws.data_dir / "state", ignore_errors=True)  # the changelog is the truth
        opts = Options(raw_mode=True)
        self.db = Rdict(str(ws.data_dir / "state"), options=opts)
        self.prefs_cache: dict[bytes, Preferences | None] = {}
        self.due = DueIndex()
        self.assigned: set[int] = set()
        self.producer = Producer(
            {
                **kafka_access("worker", ws.bootstrap_servers).confluent_config(),
                "partitioner": "murmur2_random",
                "linger.ms": 5,
                "acks": "all",
                "enable.idempotence": True,
                "batch.num.messages": 10000,
                "queue.buffering.max.messages": 1_000_000,
            }
        )
        self.consumer = Consumer(
            {
                **kafka_access("worker", ws.bootstrap_servers).confluent_config(),
                "group.id": ws.app_id,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                # range: partition n of events and of preferences go to the same process
                "partition.assignment.strategy": "range",
                "fetch.wait.max.ms": 50,
                "queued.min.messages": 20000,
            }
        )
        self.running = True

    def _create_changelog(self) -> None:
        admin = AdminClient(kafka_access("worker", self.ws.bootstrap_servers).confluent_config())
        parts = len(admin.list_topics(self.events, timeout=15).topics[self.events].partitions)
        self.partitions = parts
        fut = admin.create_topics(
            [
                NewTopic(
                    self.changelog,
                    num_partitions=parts,
                    replication_factor=-1,
                    config={"cleanup.policy": "compact"},
                )
            ]
        )[self.changelog]
        try:
            fut.result(30)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise

    # --- rebalance ------------------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        new = {tp.partition for tp in partitions if tp.topic == self.events} - self.assigned
        if new:
            self._restore(sorted(new))
        self.assigned |= new

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.producer.flush(30)
        with contextlib.suppress(KafkaException):
            consumer.commit(asynchronous=False)
        gone = {tp.partition for tp in partitions if tp.topic == self.events}
        self.assigned -= gone
        self.prefs_cache.clear()

    def _restore(self, partitions: list[int]) -> None:
        restorer = Consumer(
            {
                **kafka_access("worker", self.ws.bootstrap_servers).confluent_config(),
                "group.id": "unused",
                "enable.auto.commit": False,
            }
        )
        ends = {
            p: restorer.get_watermark_offsets(TopicPartition(self.changelog, p), timeout=10)
            for p in partitions
        }
        todo = {p: (lo, hi) for p, (lo, hi) in ends.items() if hi > lo}
        restored = 0
        if todo:
            restorer.assign([TopicPartition(self.changelog, p, lo) for p, (lo, _) in todo.items()])
            left = set(todo)
            while left:
                for msg in restorer.consume(5000, 1.0):
                    if msg.error() is not None:
                        continue
                    key, value = msg.key(), msg.value()
                    if value is None:
                        self.db.delete(key)
                    else:
                        self.db[key] = value
                        if key.startswith(USERS) and b'"holds"' in value:
                            state = UserState.from_dict(json.loads(value))
                            self.due.set(msg.partition(), key[2:], next_due_ms(state))
                    restored += 1
                    if msg.offset() >= todo[msg.partition()][1] - 1:
                        left.discard(msg.partition())
        restorer.close()
        self.prefs_cache.clear()
        log.info("assigned partitions %s, restored %d changelog records", partitions, restored)

    # --- state ----------------------------------------------------------------------------------
    def _prefs(self, key: bytes) -> Preferences | None:
        cache = self.prefs_cache
        if key in cache:
            return cache[key]
        raw = self.db.get(PREFS + key)
        prefs = None
        if raw is not None:
            _, record = self.codec.decode(raw)
            prefs = decode_preferences(record)
        if len(cache) >= PREFS_CACHE_MAX:
            cache.clear()
        cache[key] = prefs
        return prefs

    def _state(self, key: bytes, batch_states: dict[bytes, UserState]) -> UserState:
        state = batch_states.get(key)
        if state is None:
            raw = self.db.get(USERS + key)
            state = UserState.from_dict(json.loads(raw)) if raw is not None else UserState()
            batch_states[key] = state
        return state

    # --- output ---------------------------------------------------------------------------------
    def _emit(self, deliveries: list) -> None:
        produce, encode = self.producer.produce, self.encoder.encode
        for d in deliveries:
            ch = d.topic_suffix
            value = encode(d)
            while True:
                try:
                    produce(self.out_topic[ch], value, d.user_id.encode())
                    break
                except BufferError:
                    self.producer.poll(0.05)

    def _dead_letter(self, msg, error: Exception) -> None:  # noqa: ANN001
        reason = error.dlq_reason if isinstance(error, InvalidRecord) else getattr(error, "reason", "invalid")
        record = dead_letter(
            source_topic=msg.topic(),
            source_partition=msg.partition(),
            source_offset=msg.offset(),
            key=msg.key(),
            value=msg.value(),
            reason=reason,
            error=str(error),
            failed_at=_now_ms(),
        )
        self.producer.produce(
            self.dlq,
            self.codec.encode(subject_for(self.dlq), record),
            msg.key(),
            headers=[("notipipe.error.reason", reason.encode())],
        )

    def _write(self, dirty: dict[bytes, tuple[int, bytes | None]]) -> None:
        """One RocksDB write batch and one changelog record per changed key."""
        if not dirty:
            return
        wb = WriteBatch(raw_mode=True)
        produce = self.producer.produce
        for key, (partition, value) in dirty.items():
            if value is None:
                wb.delete(key)
            else:
                wb.put(key, value)
            while True:
                try:
                    produce(self.changelog, value, key, partition=partition)
                    break
                except BufferError:
                    self.producer.poll(0.05)
        self.db.write(wb)

    # --- main loop ------------------------------------------------------------------------------
    def run(self) -> None:
        self.consumer.subscribe(
            [self.events, self.prefs_topic], on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        rs, events_topic = self.rs, self.events
        last_commit = last_tick = time.monotonic()
        tick = self.ws.tick_interval_s
        while self.running:
            msgs = self.consumer.consume(2000, 0.02)
            dirty: dict[bytes, tuple[int, bytes | None]] = {}
            states: dict[bytes, UserState] = {}
            changed: dict[bytes, int] = {}
            now = _now_ms()
            for msg in msgs:
                if msg.error() is not None:
                    continue
                key = msg.key()
                if msg.topic() == events_topic:
                    try:
                        _, record = self.codec.decode(msg.value())
                        event = decode_event(record)
                        validate(event, key)
                    except (DecodeError, InvalidRecord) as exc:
                        self._dead_letter(msg, exc)
                        continue
                    state = self._state(key, states)
                    partition = msg.partition()
                    result = route(event, self._prefs(key), state, now, (partition, msg.offset()), rs)
                    if result.deliveries:
                        self._emit(result.deliveries)
                    if result.changed:
                        changed[key] = partition
                        if result.holds_changed:
                            self.due.set(partition, key, next_due_ms(state))
                else:  # preferences
                    value = msg.value()
                    if value is not None:
                        try:
                            _, record = self.codec.decode(value)
                            decode_preferences(record)
                        except (DecodeError, InvalidRecord) as exc:
                            self._dead_letter(msg, exc)
                            continue
                    dirty[PREFS + key] = (msg.partition(), value)
                    self.prefs_cache.pop(key, None)
            for key, partition in changed.items():
                dirty[USERS + key] = (partition, json.dumps(states[key].to_dict()).encode())
            self._write(dirty)
            self.producer.poll(0)

            mono = time.monotonic()
            if mono - last_tick >= tick:
                last_tick = mono
                self._flush_due()
            if mono - last_commit >= COMMIT_INTERVAL_S:
                last_commit = mono
                self.producer.flush(30)  # deliveries and changelog on the broker before the commit
                with contextlib.suppress(KafkaException):  # nothing consumed since the last commit
                    self.consumer.commit(asynchronous=True)
        self.producer.flush(30)
        with contextlib.suppress(KafkaException):
            self.consumer.commit(asynchronous=False)
        self.consumer.close()
        self.db.close()

    def _flush_due(self) -> None:
        now = _now_ms()
        dirty: dict[bytes, tuple[int, bytes | None]] = {}
        for partition in sorted(self.assigned):
            for key in self.due.pop_due(partition, now):
                states: dict[bytes, UserState] = {}
                state = self._state(key, states)
                result = flush_due(state, self._prefs(key), now, self.rs)
                self._emit(result.deliveries)
                if result.changed:
                    dirty[USERS + key] = (partition, json.dumps(state.to_dict()).encode())
                self.due.set(partition, key, next_due_ms(state))
        self._write(dirty)

    def stop(self, *_: object) -> None:
        self.running = False


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    loop = Loop(WorkerSettings.from_env(), RouterSettings.from_env())
    signal.signal(signal.SIGTERM, loop.stop)
    signal.signal(signal.SIGINT, loop.stop)
    log.info("confluent loop started: group %s", loop.ws.app_id)
    loop.run()


if __name__ == "__main__":
    main()
