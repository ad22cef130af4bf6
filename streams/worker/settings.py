"""Settings of one worker process (the routing rules' own are in `streams.core.settings`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.connection.endpoints import Endpoints
from streams.core.config import choice, env, load, number, path, text, whole

_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class WorkerSettings(Endpoints):
    app_id: str = env("APP_ID", "notipipe-router",
                      "Consumer group, and prefix of the worker's internal topics", text())
    web_port: int = env("WEB_PORT", 6066, "Worker web server (`/metrics`, `/counters`); one per "
                        "process", whole(1024, 65535))
    data_dir: Path = env("DATA_DIR", _ROOT / ".cache" / "worker", "RocksDB state of this process",
                         path(), shown="`.cache/worker/<app id>-<web port>`")
    tick_interval_s: float = env("TICK_INTERVAL_S", 1.0, "How often each partition's due holds "
                                 "are looked for", number(0.05, 60, "seconds"))
    session_timeout_s: float = env("SESSION_TIMEOUT_S", 10.0, "A dead worker's partitions are "
                                   "reassigned after this long", number(6, 300, "seconds"))
    stop_wait_s: float = env("STOP_WAIT_S", 10.0, "A stopping worker waits at most this long for "
                             "events its agents took; the partitions' next owner routes the rest",
                             number(0, 600, "seconds"))
    stall_after_s: float = env("STALL_AFTER_S", 60.0, "`/health` says `stalled` once one batch has "
                               "been routed for this long", number(1, 3600, "seconds"))
    batch_max: int = env("BATCH_MAX", 500, "Most events routed together (what is already "
                         "waiting, up to this)", whole(1, 4000))
    state_cache_users: int = env("STATE_CACHE_USERS", 20_000, "Decoded user states kept between "
                                 "batches (0: none)...", whole(0, 10_000_000))
    state_cache_mb: int = env("STATE_CACHE_MB", 128, "...and at most about this much memory of "
                              "them (~3x their JSON)", whole(1, 1024**2))
    prefs_cache_users: int = env("PREFS_CACHE_USERS", 200_000, "Decoded preferences kept (~1 KB, "
                                 "~6 GC objects each; 0: none)", whole(0, 10_000_000))
    rocksdb_memory_mb: int = env("ROCKSDB_MEMORY_MB", 256, "All RocksDB memory of the worker: "
                                 "block cache, index, memtables", whole(16, 1024**2))
    fetch_min_bytes: int = env("FETCH_MIN_BYTES", 65536, "The broker answers a fetch once it has "
                               "this many bytes...", whole(1, 50 * 1024**2))
    fetch_max_wait_ms: int = env("FETCH_MAX_WAIT_MS", 25, "...or after this long: that much "
                                 "latency, far fewer wake-ups", whole(1, 60_000))
    delivery_linger_ms: int = env("DELIVERY_LINGER_MS", 1, "Deliveries wait this long to share a "
                                  "request (more: fewer requests, more latency)", whole(0, 1000))
    clock_file: Path | None = env("CLOCK_FILE", None, "Tests only: a file that sets the worker's "
                                  "clock (`streams/worker/clock_file.py`)", path())
    log_level: str = env("LOG_LEVEL", "info", "Log level of the worker",
                         choice("debug", "info", "warning", "warn", "error", "critical"))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> WorkerSettings:
        return load(cls, environ)

    @staticmethod
    def resolve(values: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
        if "data_dir" not in values:  # one directory per process: the app id and its web port
            app_id = values.get("app_id", "notipipe-router")
            values["data_dir"] = _ROOT / ".cache" / "worker" / f"{app_id}-{values.get('web_port', 6066)}"
        return values
