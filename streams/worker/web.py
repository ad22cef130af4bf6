"""The worker's web pages: ``/metrics`` for Prometheus, ``/counters`` as JSON for people and tests,
``/health`` for whatever decides whether the worker is alive (200 unless it is stalled: 503)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.core.clock import Clock
from streams.faust_ext.rocksdb_memory import RocksDBMemory
from streams.worker.metrics import PipelineMetrics, prometheus_gauges
from streams.worker.progress import RouterProgress
from streams.worker.user_store import UserStore


def add_pages(app: Any, metrics: PipelineMetrics, store: UserStore, rocksdb: RocksDBMemory,
              clock: Clock, owned: Callable[[], list[int]], progress: RouterProgress) -> None:
    def memory_gauges() -> dict[str, float]:
        usage = rocksdb.usage()
        return {**store.gauges(), "rocksdb_cache_bytes": usage["cache"],
                "rocksdb_memtable_bytes": usage["memtables"]}

    @app.page("/metrics")
    async def prometheus(view: Any, request: Any) -> Any:
        text = metrics.prometheus() + prometheus_gauges(memory_gauges())
        return view.text(text, content_type="text/plain")

    @app.page("/counters")
    async def counters(view: Any, request: Any) -> Any:
        states = store.states
        cache = {"users": len(states), "hits": states.hits, "misses": states.misses,
                 "estimated_bytes": states.estimated_bytes}
        return view.json({**metrics.as_dict(), "due_index_size": len(store.due),
                          "state_cache": cache, "rocksdb_memory": rocksdb.usage(),
                          "clock_ms": clock.now_ms(), "partitions": owned()})

    @app.page("/health")
    async def health(view: Any, request: Any) -> Any:
        report = {**progress.report(), "partitions": owned()}
        return view.json(report, status=503 if report["state"] == "stalled" else 200)
