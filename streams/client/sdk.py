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
        self.codec = pipeline_codec(SchemaRegistryClient({"url": settings.registry_url}), topics)
        self._errors: list[str] = []
        # acks=all and idempotence (streams/connection/produce.py): `producer_config` may tune
        # batching, not loosen those.
        self.producer_config = durable({
            **kafka_access("producer", settings.bootstrap_servers).producer_config(),
            "partitioner": "murmur2_random",  # the partitioner Java clients and aiokafka use
            "linger.ms": 5,
            **(producer_config or {}),
        })
        self.producer = Producer(self.producer_config)

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
