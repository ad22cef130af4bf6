"""A replicated stack of a test's own: `notipipe stack up` with NOTIPIPE_BROKERS=3 and its own
registry, PostgreSQL, provider stub and Kafka Connect, in a home and on ports of its own, for the
broker scenarios (chaos/brokers.py kills, stops and starts its brokers). It shares the main
stack's resolved jars (a link to .cache/dist), not its data or secrets: the stack generates its
own with the same code. No monitoring: the broker tests judge by what arrives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from confluent_kafka.admin import AdminClient, ConfigResource

from stack.settings import StackSettings
from streams.connection.kafka import ACCESS_VARIABLES
from tests.integration.kafka_clients import admin_config
from tests.integration.pipeline import ROOT, free_port, free_port_range

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
            "NOTIPIPE_POSTGRES_PORT": str(free_port()),
            "NOTIPIPE_STUB_PORT": str(free_port()),
            "NOTIPIPE_CONNECT_PORT": str(free_port()),
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
        """The brokers (node 1 starts the other two), a registry on them, the database, the
        gateway stub and Connect with the project's connectors."""
        return self.stack("up", "--only", "postgres", "kafka", "registry", "provider-stub", "connect")

    def down(self) -> str:
        return self.stack("down")

    def admin(self) -> AdminClient:
        return AdminClient({**admin_config(self.settings), "log_level": 0})

    def replicas(self, topic: str, partition: int) -> list[int]:
        return list(self.admin().list_topics(topic, timeout=10).topics[topic].partitions[partition].replicas)

    def topic_config(self, topic: str) -> dict[str, str]:
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
        admin = self.admin()  # referenced until the answer: a freed client cancels its requests
        entries = admin.describe_configs([resource])[resource].result(30)
        return {name: entry.value for name, entry in entries.items()}
