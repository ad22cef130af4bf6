"""A replicated Kafka cluster of a test's own: `notipipe stack up` with NOTIPIPE_BROKERS=3 (and
its own registry) in a home and on ports of its own, its brokers killed, stopped and restarted as
an operator would. It shares the main stack's resolved jars (a link to .cache/dist), not its data
or secrets: the stack generates the cluster's own with the same code."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from confluent_kafka import Consumer, ElectionType, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from stack.components import Kafka, kafka_components
from stack.process import pid_alive, stop
from stack.settings import StackSettings
from streams.connection.kafka import ACCESS_VARIABLES
from tests.integration.kafka_clients import admin_config
from tests.integration.pipeline import ROOT, free_port, free_port_range
from tests.waiting import wait_for

BROKERS = 3
# Variables that point a process at servers or credentials of another stack.
ELSEWHERE = ("NOTIPIPE_BOOTSTRAP_SERVERS", "NOTIPIPE_REGISTRY_URL", "NOTIPIPE_CONNECT_URL",
             "NOTIPIPE_POSTGRES_DSN", *ACCESS_VARIABLES)


class ReplicatedCluster:
    def __init__(self, home: Path, shared: StackSettings) -> None:
        cache = home / ".cache"
        cache.mkdir(parents=True, exist_ok=True)
        for name, target in (("dist", shared.dist_dir), ("m2", shared.maven_repo)):
            if not (cache / name).exists():
                (cache / name).symlink_to(target, target_is_directory=True)
        self.environ = {
            **{k: v for k, v in os.environ.items() if k not in ELSEWHERE},
            "NOTIPIPE_HOME": str(home),
            "NOTIPIPE_BROKERS": str(BROKERS),
            # Each broker a client port and a controller port, one after the other.
            "NOTIPIPE_KAFKA_PORT": str(free_port_range(2 * BROKERS)),
            "NOTIPIPE_REGISTRY_PORT": str(free_port()),
            "NOTIPIPE_MONITORING": "0",
            # The stack's own pipeline topics go unused here (a test's pipeline has its own): one
            # partition each, fewer for a restarting broker to load and catch up with.
            "NOTIPIPE_PARTITIONS": "1",
        }
        self.settings = StackSettings.from_env(self.environ)

    def stack(self, *args: str) -> str:
        """`notipipe stack <args>` on this cluster; its output."""
        result = subprocess.run([sys.executable, "-m", "streams.cli", "stack", *args], env=self.environ,
                                capture_output=True, text=True, cwd=ROOT)
        assert result.returncode == 0, f"stack {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def up(self) -> str:
        """The brokers (node 1 starts the other two) and a registry on them."""
        return self.stack("up", "--only", "kafka", "registry")

    def down(self) -> str:
        return self.stack("down")

    def nodes(self) -> list[Kafka]:
        return kafka_components(self.settings)

    def node(self, node_id: int) -> Kafka:
        return Kafka(self.settings, node_id=node_id)

    def admin(self) -> AdminClient:
        return AdminClient({**admin_config(self.settings), "log_level": 0})

    # --- what an operator does --------------------------------------------------------------------
    def kill(self, node_id: int) -> None:
        """SIGKILL: no controlled shutdown, no flush; its partitions move once the controller
        notices (broker.session.timeout.ms)."""
        pid = self.node(node_id).pid()
        assert pid is not None, f"broker {node_id} is not running"
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not pid_alive(pid), 30, f"broker {node_id}'s process to be gone")

    def stop(self, node_id: int) -> None:
        """SIGTERM: a controlled shutdown, its leaderships handed over first."""
        assert stop(self.node(node_id).pid_file, timeout_s=120), f"broker {node_id} was not running"

    def restart(self, node_id: int) -> None:
        """Start it again; returns once it serves and every broker is in the cluster."""
        assert self.node(node_id).start(), f"broker {node_id} was still running"

    def elect_preferred_leaders(self) -> None:
        """Hand every partition back to its preferred replica (the first in its list), as
        `kafka-leader-election --election-type preferred` does (the brokers do it on their own
        only every 5 minutes)."""
        admin = self.admin()  # referenced until the answer: a freed client cancels its requests
        result = admin.elect_leaders(ElectionType.PREFERRED, None).result(60)
        # Partitions already led by their preferred replica answer ELECTION_NOT_NEEDED.
        failed = {f"{tp.topic}/{tp.partition}": error for tp, error in result.items()
                  if error is not None and error.args[0].code() != KafkaError.ELECTION_NOT_NEEDED}
        assert failed == {}, failed

    # --- what it looks like ---------------------------------------------------------------------
    def leader(self, topic: str, partition: int) -> int:
        """The partition's leader's node id (-1 while it has none)."""
        return self.admin().list_topics(topic, timeout=10).topics[topic].partitions[partition].leader

    def replicas(self, topic: str, partition: int) -> list[int]:
        return list(self.admin().list_topics(topic, timeout=10).topics[topic].partitions[partition].replicas)

    def under_replicated(self) -> list[str]:
        """Partitions of any topic whose in-sync replicas are fewer than their replicas."""
        topics = self.admin().list_topics(timeout=10).topics
        return [f"{name}/{p.id}" for name, topic in topics.items() for p in topic.partitions.values()
                if set(p.isrs) != set(p.replicas)]

    def lag(self, group: str, topic: str, partitions: int) -> int:
        """Records of `topic` the group has not committed past."""
        consumer = Consumer({**admin_config(self.settings), "group.id": group,
                             "enable.auto.commit": False})  # never subscribes: not a member
        try:
            tps = [TopicPartition(topic, p) for p in range(partitions)]
            committed = {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=10)}
            return sum(consumer.get_watermark_offsets(tp, timeout=10)[1] - max(committed[tp.partition], 0)
                       for tp in tps)
        finally:
            consumer.close()
