"""Settings of the local stack, read from environment variables.

| variable | default | meaning |
|---|---|---|
| NOTIPIPE_HOME | the project root | where `.cache/` (jars, data, logs) lives |
| NOTIPIPE_KAFKA_PORT | 9092 | broker listener (controller uses port + 1) |
| NOTIPIPE_REGISTRY_PORT | 8081 | Apicurio Registry HTTP port |
| NOTIPIPE_CONNECT_PORT | 8083 | Kafka Connect REST port |
| NOTIPIPE_POSTGRES_PORT | 5433 | PostgreSQL port (5433 keeps clear of a system server) |
| NOTIPIPE_STUB_PORT | 8090 | provider gateway stub port |
| NOTIPIPE_PARTITIONS | 8 | partitions of every pipeline topic |
| NOTIPIPE_TOPIC_PREFIX | "" | prefix for every pipeline topic |
| NOTIPIPE_POSTGRES_PASSWORD | notipipe | password of the `notipipe` database user |
| NOTIPIPE_START_TIMEOUT_S | 180 | how long `stack up` waits for each component |
| NOTIPIPE_PROMETHEUS_PORT | 9190 | Prometheus (HTTP API and UI) |
| NOTIPIPE_ALERTMANAGER_PORT | 9193 | Alertmanager (HTTP API and UI) |
| NOTIPIPE_LAG_EXPORTER_PORT | 9194 | consumer-lag exporter (klag-exporter) `/metrics` |
| NOTIPIPE_KAFKA_JMX_PORT | 9404 | JMX exporter agent in the broker's JVM |
| NOTIPIPE_CONNECT_JMX_PORT | 9405 | JMX exporter agent in Connect's JVM |
| NOTIPIPE_POSTGRES_EXPORTER_PORT | 9187 | PostgreSQL exporter `/metrics` |
| NOTIPIPE_DASHBOARD_PORT | 8095 | the live dashboard (`notipipe dashboard`) |
| NOTIPIPE_MONITORING | 1 | `0`: `stack up` starts no monitoring part |

Every monitoring part listens on 127.0.0.1 only. Scrape intervals, the lag exporter and the alert
thresholds: `monitoring/settings.py`.

`notipipe stack init` works against servers it did not start (docker-compose, a real cluster):
NOTIPIPE_BOOTSTRAP_SERVERS, NOTIPIPE_REGISTRY_URL, NOTIPIPE_CONNECT_URL and NOTIPIPE_POSTGRES_DSN
(libpq form) then replace the local addresses.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class StackConfigError(ValueError):
    """A stack setting has a value that cannot work."""


def _int(environ: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise StackConfigError(
            f"{name}={raw!r} is not a whole number; unset it or give e.g. {default}") from None
    if not low <= value <= high:
        raise StackConfigError(f"{name}={value} is out of range {low}..{high}")
    return value


@dataclass(frozen=True)
class StackSettings:
    home: Path
    kafka_port: int
    registry_port: int
    connect_port: int
    postgres_port: int
    stub_port: int
    partitions: int
    topic_prefix: str
    postgres_password: str
    start_timeout_s: int
    prometheus_port: int = 9190
    alertmanager_port: int = 9193
    lag_exporter_port: int = 9194
    kafka_jmx_port: int = 9404
    connect_jmx_port: int = 9405
    postgres_exporter_port: int = 9187
    dashboard_port: int = 8095
    monitoring: bool = True
    # Addresses of servers this stack did not start (`stack init`); empty: the local ones.
    bootstrap_override: str = ""
    registry_override: str = ""
    connect_override: str = ""
    postgres_dsn_override: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> StackSettings:
        home = Path(environ.get("NOTIPIPE_HOME") or PROJECT_ROOT).resolve()
        return cls(
            home=home,
            kafka_port=_int(environ, "NOTIPIPE_KAFKA_PORT", 9092, 1024, 65534),
            registry_port=_int(environ, "NOTIPIPE_REGISTRY_PORT", 8081, 1024, 65535),
            connect_port=_int(environ, "NOTIPIPE_CONNECT_PORT", 8083, 1024, 65535),
            postgres_port=_int(environ, "NOTIPIPE_POSTGRES_PORT", 5433, 1024, 65535),
            stub_port=_int(environ, "NOTIPIPE_STUB_PORT", 8090, 1024, 65535),
            partitions=_int(environ, "NOTIPIPE_PARTITIONS", 8, 1, 1024),
            topic_prefix=environ.get("NOTIPIPE_TOPIC_PREFIX", ""),
            postgres_password=environ.get("NOTIPIPE_POSTGRES_PASSWORD", "notipipe"),
            start_timeout_s=_int(environ, "NOTIPIPE_START_TIMEOUT_S", 180, 5, 3600),
            prometheus_port=_int(environ, "NOTIPIPE_PROMETHEUS_PORT", 9190, 1024, 65535),
            alertmanager_port=_int(environ, "NOTIPIPE_ALERTMANAGER_PORT", 9193, 1024, 65535),
            lag_exporter_port=_int(environ, "NOTIPIPE_LAG_EXPORTER_PORT", 9194, 1024, 65535),
            kafka_jmx_port=_int(environ, "NOTIPIPE_KAFKA_JMX_PORT", 9404, 1024, 65535),
            connect_jmx_port=_int(environ, "NOTIPIPE_CONNECT_JMX_PORT", 9405, 1024, 65535),
            postgres_exporter_port=_int(environ, "NOTIPIPE_POSTGRES_EXPORTER_PORT", 9187, 1024, 65535),
            dashboard_port=_int(environ, "NOTIPIPE_DASHBOARD_PORT", 8095, 1024, 65535),
            monitoring=_int(environ, "NOTIPIPE_MONITORING", 1, 0, 1) == 1,
            bootstrap_override=environ.get("NOTIPIPE_BOOTSTRAP_SERVERS", ""),
            registry_override=environ.get("NOTIPIPE_REGISTRY_URL", ""),
            connect_override=environ.get("NOTIPIPE_CONNECT_URL", ""),
            postgres_dsn_override=environ.get("NOTIPIPE_POSTGRES_DSN", ""),
        )

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
        return self.bootstrap_override or f"127.0.0.1:{self.kafka_port}"

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
        if self.postgres_dsn_override:
            return self.postgres_dsn_override
        return (
            f"host=127.0.0.1 port={self.postgres_port} dbname=notipipe "
            f"user=notipipe password={self.postgres_password}"
        )
