"""The producer side: what a service uses to send notifications and set preferences.

    client = NotificationClient.from_env()
    client.send(user_id="u1", category="social.like", title="Ada liked your post", body="...")
    client.set_preferences(Preferences(user_id="u1", timezone="Europe/Berlin", ...))
    client.flush()

Records are validated before they leave, so a bad event fails here, at the caller, rather than in
the DLQ. Keys are the user id, partitioned with murmur2 like Java clients and the Faust workers:
events and preferences of a user must land on the same partition number.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from .avro_codec import AvroCodec
from .connection.kafka import kafka_access
from .model import Channel, Delivery, Event, Preferences, Priority
from .routing.validation import validate, validate_preferences
from .schemas import load_schema, subject_for
from .topics import deliveries_topic


class DeliveryFailed(RuntimeError):
    """The broker did not take a record; nothing may be assumed sent."""


DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_REGISTRY = "http://127.0.0.1:8081/apis/ccompat/v7"


@dataclass(frozen=True, slots=True)
class ClientSettings:
    bootstrap_servers: str = DEFAULT_BOOTSTRAP
    registry_url: str = DEFAULT_REGISTRY
    topic_prefix: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ClientSettings:
        return cls(
            bootstrap_servers=environ.get("NOTIPIPE_BOOTSTRAP_SERVERS") or DEFAULT_BOOTSTRAP,
            registry_url=environ.get("NOTIPIPE_REGISTRY_URL") or DEFAULT_REGISTRY,
            topic_prefix=environ.get("NOTIPIPE_TOPIC_PREFIX", ""),
        )


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class NotificationClient:
    def __init__(self, settings: ClientSettings, producer_config: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.events_topic = f"{settings.topic_prefix}notifications.events"
        self.prefs_topic = f"{settings.topic_prefix}notifications.preferences"
        self.codec = AvroCodec(SchemaRegistryClient({"url": settings.registry_url}), auto_register=False)
        self.codec.add_subject(subject_for(self.events_topic), load_schema("notification_event"))
        self.codec.add_subject(subject_for(self.prefs_topic), load_schema("user_preferences"))
        self._errors: list[str] = []
        self.producer = Producer({
            **kafka_access("producer", settings.bootstrap_servers).producer_config(),
            "partitioner": "murmur2_random",  # the partitioner Java clients and aiokafka use
            "enable.idempotence": True,
            "linger.ms": 5,
            **(producer_config or {}),
        })

    @classmethod
    def from_env(cls) -> NotificationClient:
        return cls(ClientSettings.from_env())

    def _on_delivery(self, err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            self._errors.append(str(err))

    def send_event(self, event: Event) -> str:
        validate(event)
        value = self.codec.encode(subject_for(self.events_topic), event.to_avro())
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
        self._produce(topic, key, value)

    def _produce(self, topic: str, key: str, value: bytes | None) -> None:
        while True:
            try:
                self.producer.produce(topic, key=key.encode(), value=value, on_delivery=self._on_delivery)
                break
            except BufferError:  # local queue full: let librdkafka drain it, then retry
                self.producer.poll(0.1)
        self.producer.poll(0)

    def flush(self, timeout_s: float = 30.0) -> None:
        left = self.producer.flush(timeout_s)
        if left:
            raise DeliveryFailed(f"{left} records still unsent after {timeout_s}s: is Kafka at "
                                 f"{self.settings.bootstrap_servers} reachable?")
        if self._errors:
            errors, self._errors = self._errors, []
            raise DeliveryFailed(f"{len(errors)} records failed: {errors[:3]}")


def tail_deliveries(settings: ClientSettings, channel: str, *, from_beginning: bool = False,
                    timeout_s: float | None = None, group_id: str | None = None) -> Iterator[Delivery]:
    """Yield deliveries of one channel as they arrive; stop after `timeout_s` without any."""
    topic = deliveries_topic(Channel.parse(channel).key, settings.topic_prefix)
    codec = AvroCodec(SchemaRegistryClient({"url": settings.registry_url}), auto_register=False)
    codec.add_subject(subject_for(topic), load_schema("delivery"))
    consumer = Consumer({
        **kafka_access("ops", settings.bootstrap_servers).confluent_config(),
        "group.id": group_id or f"notipipe-tail-{uuid.uuid4().hex[:8]}",
        "auto.offset.reset": "earliest" if from_beginning else "latest",
        "enable.auto.commit": False,
    })
    consumer.subscribe([topic])
    idle_since = time.monotonic()
    try:
        while timeout_s is None or time.monotonic() - idle_since < timeout_s:
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            idle_since = time.monotonic()
            _, record = codec.decode(message.value())
            yield Delivery.from_avro(record)
    finally:
        consumer.close()
