"""Settings of a worker process, from environment variables (routing rules: settings.py).

| Variable | Default | Meaning |
|---|---|---|
| `NOTIPIPE_BOOTSTRAP_SERVERS` | `127.0.0.1:9092` | Kafka brokers |
| `NOTIPIPE_REGISTRY_URL` | `http://127.0.0.1:8081/apis/ccompat/v7` | Confluent-compatible registry API |
| `NOTIPIPE_TOPIC_PREFIX` | empty | Prefix of every pipeline topic |
| `NOTIPIPE_APP_ID` | `notipipe-router` | Consumer group and prefix of the worker's internal topics |
| `NOTIPIPE_WEB_PORT` | `6066` | Worker web server (`/metrics`, `/counters`); one per process |
| `NOTIPIPE_DATA_DIR` | `.cache/worker/<app id>-<web port>` | RocksDB state of this process |
| `NOTIPIPE_TICK_INTERVAL_S` | `1.0` | How often due holds are looked for |
| `NOTIPIPE_BATCH_MAX` | `500` | Most events routed together (what is already waiting, up to this) |
| `NOTIPIPE_STATE_CACHE_USERS` | `20000` | Decoded user states kept between batches (0: none)... |
| `NOTIPIPE_STATE_CACHE_MB` | `128` | ...and at most about this much memory of them (~3× their JSON) |
| `NOTIPIPE_PREFS_CACHE_USERS` | `200000` | Decoded preferences kept (~1 KB, ~6 GC objects each; 0: none) |
| `NOTIPIPE_ROCKSDB_MEMORY_MB` | `256` | All RocksDB memory of the worker: block cache, index, memtables |
| `NOTIPIPE_FETCH_MIN_BYTES` | `65536` | The broker answers a fetch once it has this many bytes... |
| `NOTIPIPE_FETCH_MAX_WAIT_MS` | `25` | ...or after this long: that much latency, far fewer wake-ups |
| `NOTIPIPE_DELIVERY_LINGER_MS` | `1` | Deliveries wait this long to share a request (more: fewer requests) |
| `NOTIPIPE_SESSION_TIMEOUT_S` | `10` | A dead worker's partitions are reassigned after this long |
| `NOTIPIPE_CLOCK_FILE` | unset | Tests only: a file that sets the worker's clock (clock_control.py) |
| `NOTIPIPE_LOG_LEVEL` | `info` | Log level of the worker |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from streams.core.settings import ConfigError

_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    bootstrap_servers: str = "127.0.0.1:9092"
    registry_url: str = "http://127.0.0.1:8081/apis/ccompat/v7"
    topic_prefix: str = ""
    app_id: str = "notipipe-router"
    web_port: int = 6066
    data_dir: Path = _ROOT / ".cache" / "worker"
    tick_interval_s: float = 1.0
    session_timeout_s: float = 10.0
    batch_max: int = 500
    state_cache_users: int = 20_000
    state_cache_mb: int = 128
    prefs_cache_users: int = 200_000
    rocksdb_memory_mb: int = 256
    fetch_min_bytes: int = 65536
    fetch_max_wait_ms: int = 25
    delivery_linger_ms: int = 1
    clock_file: Path | None = None
    log_level: str = "info"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> WorkerSettings:
        def get(name: str, default: str) -> str:
            return environ.get(f"NOTIPIPE_{name}") or default

        def number(name: str, default: str, low: float, high: float, unit: str) -> float:
            raw = get(name, default)
            try:
                value = float(raw)
            except ValueError:
                value = low - 1
            if not low <= value <= high or (unit == "a whole number" and not value.is_integer()):
                raise ConfigError(f"NOTIPIPE_{name}", raw, f"{unit} between {low:g} and {high:g}")
            return value

        web_port = int(number("WEB_PORT", "6066", 1024, 65535, "a whole number"))
        tick = number("TICK_INTERVAL_S", "1.0", 0.05, 60, "seconds")
        session = number("SESSION_TIMEOUT_S", "10", 6, 300, "seconds")
        batch_max = int(number("BATCH_MAX", "500", 1, 4000, "a whole number"))
        cache = int(number("STATE_CACHE_USERS", "20000", 0, 10_000_000, "a whole number"))
        cache_mb = int(number("STATE_CACHE_MB", "128", 1, 1024**2, "a whole number"))
        prefs_cache = int(number("PREFS_CACHE_USERS", "200000", 0, 10_000_000, "a whole number"))
        rocksdb_mb = int(number("ROCKSDB_MEMORY_MB", "256", 16, 1024**2, "a whole number"))
        fetch_min = int(number("FETCH_MIN_BYTES", "65536", 1, 50 * 1024**2, "a whole number"))
        fetch_wait = int(number("FETCH_MAX_WAIT_MS", "25", 1, 60_000, "a whole number"))
        linger = int(number("DELIVERY_LINGER_MS", "1", 0, 1000, "a whole number"))
        level = get("LOG_LEVEL", "info").lower()
        if level not in ("debug", "info", "warning", "warn", "error", "critical"):
            raise ConfigError("NOTIPIPE_LOG_LEVEL", level, "debug, info, warning, error or critical")
        app_id = get("APP_ID", "notipipe-router")
        data_dir = Path(get("DATA_DIR", str(_ROOT / ".cache" / "worker" / f"{app_id}-{web_port}")))
        clock = environ.get("NOTIPIPE_CLOCK_FILE")
        return cls(
            bootstrap_servers=get("BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            registry_url=get("REGISTRY_URL", "http://127.0.0.1:8081/apis/ccompat/v7"),
            topic_prefix=environ.get("NOTIPIPE_TOPIC_PREFIX", ""),
            app_id=app_id,
            web_port=web_port,
            data_dir=data_dir,
            tick_interval_s=tick,
            session_timeout_s=session,
            batch_max=batch_max,
            state_cache_users=cache,
            state_cache_mb=cache_mb,
            prefs_cache_users=prefs_cache,
            rocksdb_memory_mb=rocksdb_mb,
            fetch_min_bytes=fetch_min,
            fetch_max_wait_ms=fetch_wait,
            delivery_linger_ms=linger,
            clock_file=Path(clock) if clock else None,
            log_level=level,
        )
