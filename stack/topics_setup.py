"""Create the pipeline topics, the sinks' dead-letter topics and the registry's storage topics;
running it again changes nothing. Each gets the cluster's replication (`broker_config.Replication`):
on three brokers, three replicas, two of them in sync for a write, no unclean leader election."""

from __future__ import annotations

import contextlib

from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

from stack.acls_setup import REGISTRY_TOPICS
from stack.broker_config import Replication
from stack.kafka_access import stack_access
from stack.settings import StackSettings
from streams.contracts.topics import Topics, TopicSpec


def replication(settings: StackSettings) -> Replication:
    return Replication(settings.replication_factor, settings.min_insync_replicas)


SINGLE = Replication()


def topic_config(spec: TopicSpec, replicated: Replication = SINGLE) -> dict[str, str]:
    config = {"cleanup.policy": "compact" if spec.compacted else "delete", **replicated.topic_config()}
    if spec.retention_ms is not None:
        config["retention.ms"] = str(spec.retention_ms)
    if spec.compacted:
        # Let compaction catch up quickly so a restored preferences table stays small.
        config["min.cleanable.dirty.ratio"] = "0.1"
        config["segment.ms"] = str(6 * 3600 * 1000)
    return config


def registry_topics(settings: StackSettings) -> list[NewTopic]:
    """Apicurio's kafkasql topics (journal, snapshots, events), made before the registry starts so
    that they have the cluster's replication: the registry would make missing ones with as many
    replicas as it sees brokers at that moment. One partition each, as it makes them: the journal
    is read in order."""
    return [NewTopic(name, num_partitions=1, replication_factor=settings.replication_factor,
                     config=replication(settings).topic_config()) for name in REGISTRY_TOPICS]


def ensure_registry_topics(settings: StackSettings) -> list[str]:
    admin = AdminClient(stack_access(settings, "admin").confluent_config())
    return _create_missing(admin, registry_topics(settings))


def _create_missing(admin: AdminClient, wanted: list[NewTopic],
                    existing: dict | None = None) -> list[str]:
    if existing is None:
        existing = admin.list_topics(timeout=10).topics
    missing = [topic for topic in wanted if topic.topic not in existing]
    if not missing:
        return []
    for future in admin.create_topics(missing).values():
        future.result(timeout=30)
    return [f"created {topic.topic}" for topic in missing]


def ensure_topics(settings: StackSettings, echo=print) -> list[str]:
    """Create missing topics; grow partitions where fewer than configured. Returns what changed."""
    admin = AdminClient(stack_access(settings, "admin").confluent_config())
    existing = admin.list_topics(timeout=10).topics
    specs = Topics(settings.topic_prefix).specs()
    changed = _create_missing(admin, [
        NewTopic(spec.name, num_partitions=settings.partitions,
                 replication_factor=settings.replication_factor,
                 config=topic_config(spec, replication(settings))) for spec in specs], existing)
    too_few = [spec.name for spec in specs if spec.name in existing
               and len(existing[spec.name].partitions) < settings.partitions]
    if too_few:
        echo("warning: growing partitions of " + ", ".join(too_few)
             + " moves keys to other partitions; events and preferences must grow together")
        futures = admin.create_partitions([NewPartitions(n, settings.partitions) for n in too_few])
        for name, future in futures.items():
            future.result(timeout=30)
            changed.append(f"grew {name} to {settings.partitions} partitions")
    return changed


def delete_topics_containing(stack: StackSettings, marker: str) -> list[str]:
    """Delete every topic whose name contains ``marker``: a prefix of a benchmark run or a test
    pipeline names its pipeline topics, and the worker's changelog and ticks topics too (the
    app id carries it). Left behind, they grow the metadata every client refreshes."""
    admin = AdminClient(stack_access(stack, "admin").confluent_config())
    names = [t for t in admin.list_topics(timeout=15).topics if marker in t]
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            with contextlib.suppress(Exception):  # best effort cleanup
                future.result(60)
    return names
