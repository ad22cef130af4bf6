"""Settings of the local stack: where it lives, its ports, and servers it did not start.

`notipipe stack init` works against servers it did not start (docker-compose, a real cluster):
NOTIPIPE_BOOTSTRAP_SERVERS, NOTIPIPE_REGISTRY_URL, NOTIPIPE_CONNECT_URL and NOTIPIPE_POSTGRES_DSN
(libpq form) then replace the local addresses, and the credentials of streams/connection/ must be
set (locally they default to the secrets generated in `.cache/secrets/`; docs/security.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from streams.core.config import ConfigError, Invalid, Parser, env, flag, load, path, text, whole

PROJECT_ROOT = Path(__file__).resolve().parent.parent

__all__ = ["PROJECT_ROOT", "ConfigError", "StackSettings"]


def _port(name: str, default: int, doc: str, high: int = 65535) -> Any:
    return env(name, default, doc, whole(1024, high))


# A KRaft quorum of N voters survives the loss of (N-1)/2 of them: one node, or three (one may be
# lost, and with replication factor 3 and two in-sync replicas required, no acknowledged write is).
BROKER_COUNTS = (1, 3)
MAX_REPLICATION_FACTOR = 3
# Broker i (from 1) listens for clients on KAFKA_PORT + 2(i-1), for the quorum on the port after;
# its JMX exporter agent on KAFKA_JMX_PORT + 10(i-1), clear of Connect's agent next to the first.
BROKER_PORT_STEP = 2
BROKER_JMX_PORT_STEP = 10


def _broker_count() -> Parser:
    def parse(raw: str) -> int:
        if raw == "2":
            raise Invalid("a quorum of two stops when either node does: no better than one")
        if raw not in {str(n) for n in BROKER_COUNTS}:
            raise ValueError(raw)
        return int(raw)
    return Parser(parse, " or ".join(str(n) for n in BROKER_COUNTS))


@dataclass(frozen=True)
class StackSettings:
    home: Path = env("HOME", PROJECT_ROOT, "Where `.cache/` (jars, data, logs, secrets) lives",
                     path(), shown="the project root")
    kafka_port: int = _port("KAFKA_PORT", 9092, "Broker listener (the controller uses port + 1; "
                            "broker i of several: port + 2(i-1), its controller the port after)",
                            high=65534)
    brokers: int = env("BROKERS", 1, "Kafka nodes of the local stack, each a KRaft broker and "
                       "controller: 1, or 3 for a replicated cluster (replication factor 3, "
                       "min.insync.replicas 2). A stack keeps the count it was made with "
                       "(`stack reset` to change it)", _broker_count())
    registry_port: int = _port("REGISTRY_PORT", 8081, "Apicurio Registry HTTP port")
    connect_port: int = _port("CONNECT_PORT", 8083, "Kafka Connect REST port")
    postgres_port: int = _port("POSTGRES_PORT", 5433, "PostgreSQL port (5433 keeps clear of a "
                               "system server)")
    stub_port: int = _port("STUB_PORT", 8090, "Provider gateway stub port")
    partitions: int = env("PARTITIONS", 8, "Partitions of every pipeline topic", whole(1, 1024))
    topic_prefix: str = env("TOPIC_PREFIX", "", "Prefix of every pipeline topic", text())
    start_timeout_s: int = env("START_TIMEOUT_S", 180, "How long `stack up` waits for each "
                               "component", whole(5, 3600))
    app_id: str = env("APP_ID", "notipipe-router", "The workers' app id: the stack's ACLs cover "
                      "the topics and groups it prefixes", text())
    # Monitoring: every part listens on 127.0.0.1 only (thresholds and intervals: monitoring/).
    prometheus_port: int = _port("PROMETHEUS_PORT", 9190, "Prometheus (HTTP API and UI)")
    alertmanager_port: int = _port("ALERTMANAGER_PORT", 9193, "Alertmanager (HTTP API and UI)")
    lag_exporter_port: int = _port("LAG_EXPORTER_PORT", 9194, "Consumer-lag exporter `/metrics`")
    kafka_jmx_port: int = _port("KAFKA_JMX_PORT", 9404, "JMX exporter agent in the broker's JVM "
                                "(broker i of several: port + 10(i-1))")
    connect_jmx_port: int = _port("CONNECT_JMX_PORT", 9405, "JMX exporter agent in Connect's JVM")
    postgres_exporter_port: int = _port("POSTGRES_EXPORTER_PORT", 9187, "PostgreSQL exporter "
                                        "`/metrics`")
    dashboard_port: int = _port("DASHBOARD_PORT", 8095, "The live dashboard (`notipipe dashboard`)")
    monitoring: bool = env("MONITORING", True, "`0`: `stack up` starts no monitoring part", flag(),
                           shown="`1`")
    # Addresses of servers this stack did not start (`stack init`); empty: the local ones.
    bootstrap_override: str = env("BOOTSTRAP_SERVERS", "", "Kafka brokers the stack did not "
                                  "start (unset: the local one)", text())
    registry_override: str = env("REGISTRY_URL", "", "Registry API of a registry the stack did "
                                 "not start", text())
    connect_override: str = env("CONNECT_URL", "", "Kafka Connect REST URL of a Connect the "
                                "stack did not start", text())
    postgres_dsn_override: str = env("POSTGRES_DSN", "", "libpq DSN of a PostgreSQL the stack "
                                     "did not start", text())

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> StackSettings:
        settings = load(cls, environ)
        settings.check_ports()
        return replace(settings, home=settings.home.resolve())

    # The Kafka cluster: its brokers' ports and the replication its topics get.
    @property
    def kafka_client_ports(self) -> list[int]:
        return [self.kafka_port + BROKER_PORT_STEP * i for i in range(self.brokers)]

    @property
    def kafka_jmx_ports(self) -> list[int]:
        return [self.kafka_jmx_port + BROKER_JMX_PORT_STEP * i for i in range(self.brokers)]

    @property
    def replication_factor(self) -> int:
        """Replicas of every topic: each broker holds one, up to three."""
        return min(self.brokers, MAX_REPLICATION_FACTOR)

    @property
    def min_insync_replicas(self) -> int:
        """Replicas that must have a write before it is acknowledged (acks=all): with three, two,
        so one broker may be down and no acknowledged write lives on one disk only."""
        return max(1, self.replication_factor - 1)

    def check_ports(self) -> None:
        """Every port the stack listens on is its own: the brokers' derived ports included."""
        taken: dict[int, str] = {}
        listeners = [("NOTIPIPE_REGISTRY_PORT", [self.registry_port]),
                     ("NOTIPIPE_CONNECT_PORT", [self.connect_port]),
                     ("NOTIPIPE_POSTGRES_PORT", [self.postgres_port]),
                     ("NOTIPIPE_STUB_PORT", [self.stub_port]),
                     ("NOTIPIPE_KAFKA_PORT", [p + offset for p in self.kafka_client_ports
                                              for offset in (0, 1)])]
        if self.monitoring:
            listeners += [("NOTIPIPE_PROMETHEUS_PORT", [self.prometheus_port]),
                          ("NOTIPIPE_ALERTMANAGER_PORT", [self.alertmanager_port]),
                          ("NOTIPIPE_LAG_EXPORTER_PORT", [self.lag_exporter_port]),
                          ("NOTIPIPE_KAFKA_JMX_PORT", self.kafka_jmx_ports),
                          ("NOTIPIPE_CONNECT_JMX_PORT", [self.connect_jmx_port]),
                          ("NOTIPIPE_POSTGRES_EXPORTER_PORT", [self.postgres_exporter_port]),
                          ("NOTIPIPE_DASHBOARD_PORT", [self.dashboard_port])]
        for variable, ports in listeners:
            for port in ports:
                if port > 65535:
                    raise ConfigError(variable, str(ports[0]), f"a port that leaves room for "
                                      f"{self.brokers} brokers (each uses the next ports)")
                if port in taken:
                    raise ConfigError(variable, str(ports[0]), f"ports apart from "
                                      f"{taken[port]}'s (both would listen on {port})")
                taken[port] = variable

    # Layout under .cache: dist/ holds resolved jars (kept by reset), data/ and run/ are state.
    @property
    def cache_dir(self) -> Path:
        return self.home / ".cache"

    @property
    def dist_dir(self) -> Path:
        return self.cache_dir / "dist"

    @property
    def maven_repo(self) -> Path:
        return self.cache_dir / "m2"

    @property
    def data_dir(self) -> Path:
        return self.cache_dir / "data"

    @property
    def run_dir(self) -> Path:
        return self.cache_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.cache_dir / "logs"

    @property
    def tools_dir(self) -> Path:
        """Binaries the project builds itself (`cargo install --root`): the lag exporter."""
        return self.cache_dir / "tools"

    @property
    def monitoring_run_dir(self) -> Path:
        """Generated monitoring configs, and the worker targets Prometheus discovers."""
        return self.run_dir / "monitoring"

    @property
    def worker_targets_dir(self) -> Path:
        return self.monitoring_run_dir / "targets" / "workers"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://127.0.0.1:{self.alertmanager_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def bootstrap_servers(self) -> str:
        """Every local broker: a client starting while one is down finds the others."""
        return self.bootstrap_override or ",".join(f"127.0.0.1:{p}" for p in self.kafka_client_ports)

    @property
    def registry_url(self) -> str:
        """Confluent-compatible API of Apicurio Registry, as the Python clients use it."""
        return self.registry_override or f"http://127.0.0.1:{self.registry_port}/apis/ccompat/v7"

    @property
    def connect_url(self) -> str:
        return self.connect_override or f"http://127.0.0.1:{self.connect_port}"

    @property
    def stub_url(self) -> str:
        return f"http://127.0.0.1:{self.stub_port}"

    @property
    def postgres_jdbc_url(self) -> str:
        return f"jdbc:postgresql://127.0.0.1:{self.postgres_port}/notipipe"

    @property
    def postgres_dsn(self) -> str:
        """The owner role's connection string (streams/connection/postgres.py has the others)."""
        from streams.connection.postgres import OWNER, dsn

        return dsn(self, OWNER)
