"""The brokers of the stack's cluster as the broker scenarios see them: who leads a partition,
what is under-replicated, a node SIGKILLed, stopped and started as an operator would.

The stack's Kafka components do the starting and stopping (`stack/components.py`); the cluster's
view comes from its metadata, asked as the stack's admin.
"""

from __future__ import annotations

import os
import signal

from confluent_kafka import ElectionType, KafkaError
from confluent_kafka.admin import AdminClient

from chaos.workers import wait_until
from stack.components import Kafka, kafka_components
from stack.process import pid_alive, stop
from stack.settings import StackSettings

# Replicas the broker scenarios need: with three, one may be down and writes (min ISR 2) go on.
NEEDED_BROKERS = 3


class TooFewBrokers(RuntimeError):
    """The stack's cluster cannot lose a broker without losing writes."""


class Brokers:
    def __init__(self, stack: StackSettings, admin_config: dict) -> None:
        self.stack, self._admin_config = stack, admin_config

    def _admin(self) -> AdminClient:
        return AdminClient({**self._admin_config, "log_level": 0})

    # -- what the cluster looks like ---------------------------------------------------------------
    def live(self) -> list[int]:
        """Node ids of the brokers in the cluster's metadata now."""
        return sorted(self._admin().list_topics(timeout=10).brokers)

    def require(self) -> None:
        if len(kafka_components(self.stack)) < NEEDED_BROKERS or len(self.live()) < NEEDED_BROKERS:
            raise TooFewBrokers(
                f"the broker scenarios need a cluster of {NEEDED_BROKERS} brokers (replication "
                f"factor 3, min.insync.replicas 2); this stack has {len(self.live())}. Run them "
                "on a replicated stack: `notipipe stack down && notipipe stack reset && "
                "NOTIPIPE_BROKERS=3 notipipe stack up`")

    def leader(self, topic: str, partition: int) -> int:
        """The partition's leader's node id (-1 while it has none)."""
        return self._admin().list_topics(topic, timeout=10).topics[topic].partitions[partition].leader

    def under_replicated(self) -> list[str]:
        """Partitions of any topic whose in-sync replicas are fewer than their replicas."""
        topics = self._admin().list_topics(timeout=10).topics
        return [f"{name}/{p.id}" for name, topic in topics.items() for p in topic.partitions.values()
                if set(p.isrs) != set(p.replicas)]

    def wait_in_sync(self, what: str, timeout_s: float = 180) -> None:
        wait_until(lambda: not self.under_replicated(), timeout_s,
                   f"no under-replicated partition {what}")

    def elect_preferred_leaders(self) -> None:
        """Hand every partition back to its preferred replica, as `kafka-leader-election
        --election-type preferred` does (the brokers do it on their own only every 5 minutes)."""
        admin = self._admin()  # referenced until the answer: a freed client cancels its requests
        result = admin.elect_leaders(ElectionType.PREFERRED, None).result(60)
        failed = {f"{tp.topic}/{tp.partition}": error for tp, error in result.items()
                  if error is not None and error.args[0].code() != KafkaError.ELECTION_NOT_NEEDED}
        if failed:
            raise RuntimeError(f"preferred leader election failed for {failed}")

    # -- what an operator does ---------------------------------------------------------------------
    def node(self, node_id: int) -> Kafka:
        return Kafka(self.stack, node_id=node_id)

    def nodes(self) -> list[Kafka]:
        return kafka_components(self.stack)

    def kill(self, node_id: int) -> None:
        """SIGKILL: no controlled shutdown; its partitions move once the controller notices."""
        pid = self.node(node_id).pid()
        if pid is None:
            raise RuntimeError(f"broker {node_id} is not running")
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not pid_alive(pid), 30, f"broker {node_id}'s process to be gone")

    def stop(self, node_id: int) -> None:
        """SIGTERM: a controlled shutdown, its leaderships handed over first."""
        if not stop(self.node(node_id).pid_file, timeout_s=120):
            raise RuntimeError(f"broker {node_id} was not running")

    def start(self, node_id: int) -> None:
        """Returns once it serves and every broker is in the cluster."""
        self.node(node_id).start()
