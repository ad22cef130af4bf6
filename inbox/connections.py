"""Every connection the inbox service opens, configured in one place: the Kafka consumer of the
feed, the receipts producer, the schema registry and PostgreSQL. Securing the stack (SASL_SSL,
registry credentials, a database role of its own) changes these functions and nothing else."""

from __future__ import annotations

import uuid
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient

from inbox.settings import InboxSettings
from streams.connection.kafka import kafka_access


def feed_consumer_config(settings: InboxSettings) -> dict[str, Any]:
    """A consumer that is assigned partitions (no group membership, nothing committed): each
    instance reads every in-app delivery from where the topic ended when it started."""
    return {
        **kafka_access("inbox", settings.bootstrap_servers).confluent_config(),
        # librdkafka wants a group id even for assign(); nothing is ever committed under it.
        "group.id": f"notipipe-inbox-feed-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        # A new delivery reaches the browsers in well under a second.
        "fetch.wait.max.ms": 100,
        "log_level": 3,
    }


def receipts_producer_config(settings: InboxSettings) -> dict[str, Any]:
    return {
        **kafka_access("inbox", settings.bootstrap_servers).producer_config(),  # acks=all, idempotent
        # Keys are user ids, partitioned like the events (murmur2, as Java clients and the worker):
        # a receipt lands on the partition number of its user's events.
        "partitioner": "murmur2_random",
        "linger.ms": 2,
    }


def registry_client(settings: InboxSettings) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": settings.registry_url})


def postgres_dsn(settings: InboxSettings) -> str:
    return settings.database_dsn()
