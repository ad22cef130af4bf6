"""The producer side: what a service uses to send notifications and set preferences.

    client = NotificationClient.from_env()
    client.send(user_id="u1", category="social.like", title="Ada liked your post", body="...")
    client.set_preferences(Preferences(user_id="u1", timezone="Europe/Berlin", ...))
    client.flush()

Records are validated before they leave, so a bad event fails here, at the caller, rather than in
the DLQ: a field over its documented maximum (``validation.MAX_CHARS``), and an encoded record
larger than the topic or the producer accepts (``RecordTooLarge``, naming the limit and by how much
it is exceeded) instead of librdkafka's ``MSG_SIZE_TOO_LARGE``. Keys are the user id, partitioned
with murmur2 like Java clients and the Faust workers: events and preferences of a user must land
on the same partition number.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, ConfigResource
from confluent_kafka.schema_registry import SchemaRegistryClient

from streams.connection.endpoints import Endpoints
from streams.connection.kafka import kafka_access
from streams.connection.produce import durable, produce
from streams.contracts.pipeline_codec import pipeline_codec
from streams.contracts.schemas import subject_for
from streams.core.config import load
from streams.core.model import Channel, Delivery, Event, Preferences, Priority
from streams.core.routing.validation import validate, validate_preferences


class DeliveryFailed(RuntimeError):
    """The broker did not take a record; nothing may be assumed sent."""


class RecordTooLarge(ValueError):
    """An encoded record is larger than its topic (``max.message.bytes``) or the producer
    (``message.max.bytes``) accepts; nothing was sent."""


# librdkafka's default message.max.bytes: the largest request the producer itself will build.
PRODUCER_MAX_BYTES = 1_000_000
# A record batch holding one record without headers: the batch header (61 bytes) and the record's
# own length, timestamp, offset and size fields, rounded up. The broker's limit is on the batch.
RECORD_OVERHEAD_BYTES = 100
# Records up to this size are sent unchecked: every topic takes them (Kafka's default limit is
# about 1 MB; a topic set below 16 KiB is a misconfiguration). Larger ones are checked against the
# real limits, the topic's asked once per topic.
UNCHECKED_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class ClientSettings(Endpoints):
    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ClientSettings:
        return load(cls, environ)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class NotificationClient:
    def __init__(self, settings: ClientSettings, producer_config: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        topics = settings.topics
        self.events_topic, self.prefs_topic = topics.events, topics.preferences
        self.codec = pipeline_codec(SchemaRegistryClient({"url": settings.registry_url}), topics,
                                    settings.event_schema_version)
        self._errors: list[str] = []
        access = kafka_access("producer", settings.bootstrap_servers)
        # acks=all and idempotence (streams/connection/produce.py): `producer_config` may tune
        # batching, not loosen those.
        self.producer_config = durable({
            **access.producer_config(),
            "partitioner": "murmur2_random",  # the partitioner Java clients and aiokafka use
            "linger.ms": 5,
            **(producer_config or {}),
        })
        self.producer = Producer(self.producer_config)
        self._producer_max = int(self.producer_config.get("message.max.bytes", PRODUCER_MAX_BYTES))
        self._admin_config = access.confluent_config()
        self._limits: dict[str, tuple[int, str]] = {}  # topic -> (bytes, which limit)

    @classmethod
    def from_env(cls) -> NotificationClient:
        return cls(ClientSettings.from_env())

    def _on_delivery(self, err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            self._errors.append(str(err))

    def send_event(self, event: Event) -> str:
        validate(event)
        value = self.codec.encode(subject_for(self.events_topic), event.to_avro())
        self._check_size(self.events_topic, event.user_id, value, f"event {event.event_id}",
                         _largest_fields(event))
        self._produce(self.events_topic, event.user_id, value)
        return event.event_id

    def send(self, *, user_id: str, category: str, title: str | None = None, body: str | None = None,
             template: str | None = None, data: Mapping[str, str] | None = None,
             priority: Priority | str = Priority.NORMAL, channels: Sequence[Channel | str] | None = None,
             digest_key: str | None = None, event_id: str | None = None, occurred_at: int | None = None,
             expires_at: int | None = None, source: str | None = None) -> str:
        """Send one notification event; returns its event_id (generated when not given)."""
        event = Event(
            event_id=event_id or str(uuid.uuid4()), user_id=user_id, category=category,
            occurred_at=occurred_at if occurred_at is not None else now_ms(),
            priority=Priority(str(priority).upper()), template=template, data=dict(data or {}),
            title=title, body=body,
            channels=None if channels is None else tuple(Channel.parse(str(c)) for c in channels),
            digest_key=digest_key, expires_at=expires_at, source=source)
        return self.send_event(event)

    def set_preferences(self, prefs: Preferences) -> None:
        validate_preferences(prefs)
        value = self.codec.encode(subject_for(self.prefs_topic), prefs.to_avro())
        self._produce(self.prefs_topic, prefs.user_id, value)

    def reset_preferences(self, user_id: str) -> None:
        """Tombstone: the user is back to the configured defaults."""
        self._produce(self.prefs_topic, user_id, None)

    def send_raw(self, topic: str, key: str, value: bytes | None) -> None:
        """Bytes as they are (tests and tools: e.g. a malformed event)."""
        self._check_size(topic, key, value, "record", "")
        self._produce(topic, key, value)

    def record_limit(self, topic: str) -> tuple[int, str]:
        """The largest record batch ``topic`` takes from this client, in bytes, and which limit
        that is: the topic's ``max.message.bytes`` (asked once) or the producer's own."""
        if topic not in self._limits:
            limit, which = self._producer_max, "the producer's message.max.bytes"
            topic_max = self._topic_max_bytes(topic)
            if topic_max is not None and topic_max < limit:
                limit, which = topic_max, f"the max.message.bytes of topic {topic}"
            self._limits[topic] = (limit, which)
        return self._limits[topic]

    def _topic_max_bytes(self, topic: str) -> int | None:
        """The topic's max.message.bytes; None when the cluster does not say (e.g. no right to
        describe configs), and the producer's limit applies."""
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
        try:
            admin = AdminClient(self._admin_config)
            configs = admin.describe_configs([resource])[resource].result(10)
            return int(configs["max.message.bytes"].value)
        except (KafkaException, KeyError, ValueError):
            return None

    def _check_size(self, topic: str, key: str, value: bytes | None, what: str, detail: str) -> None:
        size = len(key.encode()) + len(value or b"") + RECORD_OVERHEAD_BYTES
        if size <= min(self._producer_max, UNCHECKED_BYTES):
            return
        limit, which = self.record_limit(topic)
        if size > limit:
            raise RecordTooLarge(
                f"{what} is {size:,} bytes as a Kafka record ({len(value or b''):,} bytes of Avro, "
                f"the key and about {RECORD_OVERHEAD_BYTES} bytes of record overhead): "
                f"{size - limit:,} bytes over {which}, {limit:,} bytes. Nothing was sent{detail}")

    def _produce(self, topic: str, key: str, value: bytes | None) -> None:
        produce(self.producer, topic, key.encode(), value, self._on_delivery)
        self.producer.poll(0)

    def flush(self, timeout_s: float = 30.0) -> None:
        left = self.producer.flush(timeout_s)
        if left:
            raise DeliveryFailed(f"{left} records still unsent after {timeout_s}s: is Kafka at "
                                 f"{self.settings.bootstrap_servers} reachable?")
        if self._errors:
            errors, self._errors = self._errors, []
            raise DeliveryFailed(f"{len(errors)} records failed: {errors[:3]}")


def _largest_fields(event: Event) -> str:
    sizes = {name: len(getattr(event, name) or "") for name in ("title", "body", "summary")}
    sizes["data"] = sum(len(k) + len(v) for k, v in event.data.items())
    largest = sorted(((n, c) for n, c in sizes.items() if c), key=lambda nc: -nc[1])[:2]
    if not largest:
        return ""
    return "; its largest fields: " + ", ".join(f"{n} {c:,} characters" for n, c in largest)


class DeliveryReader:
    """Delivery records of some channels, decoded, as they arrive (its own consumer group)."""

    def __init__(self, settings: Endpoints, channels: Sequence[str], *, from_beginning: bool = False,
                 group_id: str | None = None) -> None:
        topics = settings.topics
        self.codec = pipeline_codec(SchemaRegistryClient({"url": settings.registry_url}), topics)
        self.consumer = Consumer({
            # The operators' principal: it may read the delivery topics (docs/security.md).
            **kafka_access("ops", settings.bootstrap_servers).confluent_config(),
            "group.id": group_id or f"notipipe-tail-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "enable.auto.commit": False,
        })
        self.consumer.subscribe([topics.deliveries(Channel.parse(ch).key) for ch in channels])

    def poll(self, timeout_s: float) -> Delivery | None:
        message = self.consumer.poll(timeout_s)
        if message is None or message.error() is not None:
            return None
        return Delivery.from_avro(self.codec.decode(message.value())[1])

    def close(self) -> None:
        self.consumer.close()


def tail_deliveries(settings: Endpoints, channel: str, *, from_beginning: bool = False,
                    timeout_s: float | None = None, group_id: str | None = None) -> Iterator[Delivery]:
    """Yield deliveries of one channel as they arrive; stop after `timeout_s` without any."""
    reader = DeliveryReader(settings, [channel], from_beginning=from_beginning, group_id=group_id)
    idle_since = time.monotonic()
    try:
        while timeout_s is None or time.monotonic() - idle_since < timeout_s:
            delivery = reader.poll(0.5)
            if delivery is not None:
                idle_since = time.monotonic()
                yield delivery
    finally:
        reader.close()
