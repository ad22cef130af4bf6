"""Kafka side of the benchmark: topics per system under test, the paced producer, consumer lag as
the broker reports it, and reading back what the system wrote (with the broker's append times).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import threading
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import fastavro
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from stack.kafka_access import stack_access
from stack.schemas_setup import register_schemas
from stack.settings import StackSettings
from stack.topics_setup import ensure_topics
from streams.connection.produce import durable
from streams.contracts.avro_codec import _strip_logical
from streams.contracts.schemas import load_schema
from streams.contracts.topics import Topics

from .stats import Schedule


def kafka_config(stack: StackSettings) -> dict:
    """The benchmark works as the stack's admin: it makes and deletes topics of its own, changes
    their configs and reads every group's offsets (the systems under test get the same login)."""
    return stack_access(stack, "admin").confluent_config()


def create_pipeline(stack: StackSettings, prefix: str, partitions: int) -> Topics:
    """Pipeline topics and schemas of the prefix; delivery topics stamp LogAppendTime, so a
    delivery's timestamp is when the broker appended it, not when the worker said it sent it."""
    scoped = dataclasses.replace(stack, topic_prefix=prefix, partitions=partitions)
    ensure_topics(scoped, echo=lambda _: None)
    register_schemas(scoped)
    topics = Topics(prefix)
    admin = AdminClient(kafka_config(stack))
    resources = [
        ConfigResource(
            ConfigResource.Type.TOPIC,
            name,
            incremental_configs=[
                ConfigEntry(
                    "message.timestamp.type", "LogAppendTime", incremental_operation=AlterConfigOpType.SET
                )
            ],
        )
        for name in topics.all_deliveries().values()
    ]
    for future in admin.incremental_alter_configs(resources).values():
        future.result(30)
    return topics


class OffsetProbe:
    """End offsets of topics and committed offsets of a consumer group: lag as tools see it."""

    def __init__(self, stack: StackSettings) -> None:
        self.admin = AdminClient(kafka_config(stack))
        self.consumer = Consumer(
            {
                **kafka_config(stack),
                "group.id": "bench-offset-probe",
                "enable.auto.commit": False,
            }
        )
        self._partitions: dict[str, int] = {}

    def partitions(self, topic: str) -> int:
        if topic not in self._partitions:
            meta = self.admin.list_topics(topic, timeout=15).topics[topic]
            self._partitions[topic] = len(meta.partitions)
        return self._partitions[topic]

    def end_offsets(self, topic: str) -> list[int]:
        return [
            self.consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(self.partitions(topic))
        ]

    def committed(self, group: str, topic: str) -> list[int]:
        tps = [TopicPartition(topic, p) for p in range(self.partitions(topic))]
        future = self.admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, tps)])
        result = future[group].result(15)
        return [max(tp.offset, 0) for tp in sorted(result.topic_partitions, key=lambda t: t.partition)]

    def lag(self, group: str, topic: str) -> int:
        ends = self.end_offsets(topic)
        try:
            committed = self.committed(group, topic)
        except Exception:  # noqa: BLE001 - group not there yet: everything is lag
            return sum(ends)
        return sum(max(0, e - c) for e, c in zip(ends, committed, strict=False))

    def total_end(self, topics: Sequence[str]) -> int:
        return sum(sum(self.end_offsets(t)) for t in topics)

    def close(self) -> None:
        self.consumer.close()


def wait_caught_up(
    probe: OffsetProbe,
    group: str,
    topic: str,
    timeout_s: float,
    alive: Callable[[], bool] = lambda: True,
    on_poll: Callable[[int], None] | None = None,
    interval_s: float = 0.25,
) -> float | None:
    """Wait until the group's committed offsets reach the topic's end; returns seconds waited,
    or None on time-out (or when ``alive`` says the system under test died)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        lag = probe.lag(group, topic)
        if on_poll is not None:
            on_poll(lag)
        if lag == 0:
            return time.monotonic() - start
        if not alive():
            return None
        time.sleep(interval_s)
    return None


def wait_quiet(probe: OffsetProbe, topics: Sequence[str], quiet_s: float, timeout_s: float) -> bool:
    """Wait until the topics stop growing for ``quiet_s`` seconds (in-flight writes have landed)."""
    last = probe.total_end(topics)
    stable_since = time.monotonic()
    deadline = stable_since + timeout_s
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = probe.total_end(topics)
        if now != last:
            last, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since >= quiet_s:
            return True
    return False


def load_producer_config(stack: StackSettings) -> dict:
    """The load generator's producer: acks=all and idempotent like every producer of the pipeline,
    so the benchmark pays what production pays per record."""
    return durable(
        {
            **kafka_config(stack),
            "partitioner": "murmur2_random",  # as the SDK, Java clients and aiokafka
            "linger.ms": 5,
            "batch.num.messages": 10000,
            "queue.buffering.max.messages": 2_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
        }
    )


def make_producer(stack: StackSettings) -> Producer:
    return Producer(load_producer_config(stack))


def produce_all(
    producer: Producer, topic: str, keys: Sequence[bytes], values: Sequence[bytes | None]
) -> None:
    """Unpaced (preferences): as fast as librdkafka takes them, then wait for the broker."""
    for key, value in zip(keys, values, strict=True):
        while True:
            try:
                producer.produce(topic, value=value, key=key)
                break
            except BufferError:
                producer.poll(0.05)
    left = producer.flush(120)
    if left:
        raise RuntimeError(f"{left} records not acknowledged by the broker")


class PacedSend:
    """Sends pre-encoded events on a schedule; the record timestamp (CreateTime) is the moment
    ``produce`` is called, and is kept per event in ``sent_ms`` for the latency measurement.

    ``schedule=None``: as fast as possible (a backlog burst)."""

    def __init__(
        self,
        producer: Producer,
        topic: str,
        keys: Sequence[bytes],
        values: Sequence[bytes],
        schedule: Schedule | None,
    ) -> None:
        self.producer, self.topic = producer, topic
        self.keys, self.values, self.schedule = keys, values, schedule
        self.sent_ms = array("q", bytes(8 * len(keys)))
        self.started_ms = 0
        self.finished_ms = 0
        self.errors = 0
        self.late_s = 0.0  # how far the sender fell behind its schedule at worst

    def _on_delivery(self, err, _msg) -> None:  # noqa: ANN001
        if err is not None:
            self.errors += 1

    def run(self) -> None:
        producer, topic, keys, values, sent_ms = (
            self.producer,
            self.topic,
            self.keys,
            self.values,
            self.sent_ms,
        )
        produce, poll, n = producer.produce, producer.poll, len(keys)
        schedule = self.schedule
        t0 = time.perf_counter()
        self.started_ms = time.time_ns() // 1_000_000
        sent = 0
        while sent < n:
            if schedule is None:
                due = n
            else:
                elapsed = time.perf_counter() - t0
                due = min(n, schedule.events_due(elapsed))
                if due <= sent:
                    time.sleep(min(0.002, max(0.0002, schedule.wait_s(sent, elapsed))))
                    continue
                self.late_s = max(self.late_s, elapsed - _due_time(schedule, sent))
            while sent < due:
                ts = time.time_ns() // 1_000_000
                try:
                    produce(topic, values[sent], keys[sent], timestamp=ts, on_delivery=self._on_delivery)
                except BufferError:
                    poll(0.01)
                    continue
                sent_ms[sent] = ts
                sent += 1
                if sent & 1023 == 0:
                    poll(0)
            poll(0)
        self.finished_ms = time.time_ns() // 1_000_000
        producer.flush(120)


def _due_time(schedule: Schedule, index: int) -> float:
    """When event ``index`` was due (seconds from the start)."""
    return schedule.wait_s(index, 0.0)


@dataclass
class DeliveryRecord:
    append_ms: int
    delivery_id: str
    kind: str
    reason: str
    event_ids: list[str]
    created_ms: int  # the system's clock when it routed the event (Delivery.created_at)


class DeliveryReader:
    """Reads the delivery topics between recorded offsets and decodes the fields the benchmark
    needs. Runs after a phase, so its decoding costs the system under test nothing."""

    def __init__(self, stack: StackSettings, topics: Topics) -> None:
        self.topics = topics
        self.consumer = Consumer(
            {
                **kafka_config(stack),
                "group.id": "bench-reader",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            }
        )
        self.probe = OffsetProbe(stack)
        self.schema = fastavro.parse_schema(_strip_logical(load_schema("delivery")))
        self.positions = {t: self.probe.end_offsets(t) for t in topics.all_deliveries().values()}

    def read_new(self) -> list[DeliveryRecord]:
        """Everything appended since the last call."""
        out: list[DeliveryRecord] = []
        schema = self.schema
        for topic in self.topics.all_deliveries().values():
            start = self.positions[topic]
            end = self.probe.end_offsets(topic)
            todo = {p for p in range(len(end)) if end[p] > start[p]}
            if not todo:
                continue
            self.consumer.assign([TopicPartition(topic, p, start[p]) for p in todo])
            remaining = sum(end[p] - start[p] for p in todo)
            deadline = time.monotonic() + 120
            while remaining > 0 and time.monotonic() < deadline:
                for msg in self.consumer.consume(5000, 1.0):
                    if msg.error() is not None:
                        continue
                    p, off = msg.partition(), msg.offset()
                    if off >= end[p]:
                        continue
                    remaining -= 1
                    buf = io.BytesIO(msg.value())
                    buf.seek(5)
                    rec = fastavro.schemaless_reader(buf, schema, None)
                    out.append(
                        DeliveryRecord(
                            msg.timestamp()[1],
                            rec["delivery_id"],
                            rec["kind"],
                            rec["reason"],
                            rec["event_ids"],
                            rec["created_at"],
                        )
                    )
            self.consumer.unassign()
            self.positions[topic] = end
        return out

    def close(self) -> None:
        self.consumer.close()
        self.probe.close()


class LagSampler(threading.Thread):
    """Samples the group's committed lag on a topic every ``interval_s`` while a phase runs."""

    def __init__(self, stack: StackSettings, group: str, topic: str, interval_s: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.probe = OffsetProbe(stack)
        self.group, self.topic, self.interval_s = group, topic, interval_s
        self.samples: list[tuple[float, int]] = []  # (epoch seconds, lag)
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            with contextlib.suppress(Exception):  # a missed sample is not a failed run
                self.samples.append((time.time(), self.probe.lag(self.group, self.topic)))
            self._stop_event.wait(self.interval_s)

    def stop(self) -> list[tuple[float, int]]:
        self._stop_event.set()
        self.join(10)
        self.probe.close()
        return self.samples

    @property
    def peak(self) -> int:
        return max((lag for _, lag in self.samples), default=0)


def nan_if_none(value: float | None) -> float:
    return math.nan if value is None else value
