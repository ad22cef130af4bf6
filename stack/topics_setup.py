"""Create the pipeline topics and the sinks' dead-letter topics; running it again changes nothing."""

from __future__ import annotations

import contextlib

from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

from stack.kafka_access import stack_access
from stack.settings import StackSettings
from streams.contracts.topics import Topics, TopicSpec


def topic_config(spec: TopicSpec) -> dict[str, str]:
    config = {"cleanup.policy": "compact" if spec.compacted else "delete"}
    if spec.retention_ms is not None:
        config["retention.ms"] = str(spec.retention_ms)
    if spec.compacted:
        # Let compaction catch up quickly so a restored preferences table stays small.
        config["min.cleanable.dirty.ratio"] = "0.1"
        config["segment.ms"] = str(6 * 3600 * 1000)
    return config


def ensure_topics(settings: StackSettings, echo=print) -> list[str]:
    """Create missing topics; grow partitions where fewer than configured. Returns what changed."""
    admin = AdminClient(stack_access(settings, "admin").confluent_config())
    existing = admin.list_topics(timeout=10).topics
    specs = Topics(settings.topic_prefix).specs()
    missing = [spec for spec in specs if spec.name not in existing]
    changed: list[str] = []
    if missing:
        futures = admin.create_topics([
            NewTopic(spec.name, num_partitions=settings.partitions, replication_factor=1,
                     config=topic_config(spec)) for spec in missing])
        for name, future in futures.items():
            future.result(timeout=30)
            changed.append(f"created {name}")
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
