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
| NOTIPIPE_APP_ID | notipipe-router | the workers' app id: their ACLs cover what it prefixes |

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
    app_id: str = "notipipe-router"
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
            app_id=environ.get("NOTIPIPE_APP_ID") or "notipipe-router",
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
