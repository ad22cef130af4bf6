"""The cluster as the worker needs it, read once before anything starts: the input topics (events,
preferences, receipts) exist and are co-partitioned, and the worker's ticks topic matches them.
The topics the worker makes (ticks, and Faust's table changelogs) get the replication factor of
its events topic: on a replicated cluster its state is as safe as its input, with no setting to
keep in step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from streams.contracts.topics import Topics

TICKS_RETENTION_MS = 3600 * 1000  # ticks carry no data: an hour is plenty


class TopologyError(RuntimeError):
    """The topics the worker needs are missing or not co-partitioned."""


@dataclass(frozen=True)
class Topology:
    topics: Topics
    ticks: str  # the worker group's timer topic
    partitions: int  # of events, preferences, receipts and ticks alike
    replication_factor: int = 1  # of the events topic: the worker's own topics get the same


def discover_topology(admin_config: dict[str, Any], topics: Topics, app_id: str) -> Topology:
    """The partition count of the co-partitioned inputs; creates the ticks topic to match."""
    admin = AdminClient({**admin_config, "log_level": 0})
    where = admin_config.get("bootstrap.servers")
    try:
        found = admin.list_topics(timeout=15).topics
    except Exception as exc:  # KafkaException: broker unreachable
        raise TopologyError(f"cannot reach Kafka at {where}: {exc}. Is it running (`notipipe "
                            "stack status`)? Set NOTIPIPE_BOOTSTRAP_SERVERS otherwise.") from exc
    inputs = (topics.events, topics.preferences, topics.receipts)
    missing = [t for t in inputs if t not in found]
    if missing:
        raise TopologyError(f"topics {missing} do not exist: create them with `notipipe stack up` "
                            "(or your cluster's tooling) before starting workers")
    counts = {t: len(found[t].partitions) for t in inputs}
    if len(set(counts.values())) != 1:
        raise TopologyError(f"{', '.join(inputs)} must have the same partition count to be "
                            f"co-partitioned, found {counts}")
    partitions = counts[topics.events]
    replication_factor = min(len(p.replicas) for p in found[topics.events].partitions.values())
    ticks = topics.ticks(app_id)
    if ticks not in found:
        future = admin.create_topics([NewTopic(ticks, num_partitions=partitions,
                                               replication_factor=replication_factor,
                                               config={"retention.ms": str(TICKS_RETENTION_MS)})])[ticks]
        try:
            future.result(30)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    elif len(found[ticks].partitions) != partitions:
        raise TopologyError(f"{ticks} has {len(found[ticks].partitions)} partitions, "
                            f"{topics.events} has {partitions}: delete {ticks} (it holds no state) "
                            "and restart")
    return Topology(topics, ticks, partitions, replication_factor)
