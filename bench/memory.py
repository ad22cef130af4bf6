"""The worker's memory over a soak: RSS next to the gauges that explain it.

RSS alone cannot tell a leak from caches filling to their budgets. Each sample also takes the
worker's own gauges from its `/counters` page (events routed, the RocksDB cache with its
memtables, the state cache's estimate), so the report can say whether RSS still grew once the
caches were full.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from .systems import proc_rss_mb

MB = 1024 * 1024
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class MemorySample:
    elapsed_s: float
    rss_mb: float
    events_routed: int | None  # None: the worker's page did not answer in time
    rocksdb_mb: float | None  # block cache, memtables charged to it
    state_cache_mb: float | None  # the state cache's own estimate


def read_gauges(web_port: int, timeout_s: float = 5.0) -> tuple[int | None, float | None, float | None]:
    """(events routed, RocksDB MB, state cache MB) from the worker's /counters page."""
    url = f"http://127.0.0.1:{web_port}/counters"
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        counters = json.load(response)
    rocksdb = counters.get("rocksdb_memory") or {}
    cache = counters.get("state_cache") or {}
    return (
        counters.get("events.routed"),
        round(rocksdb["cache"] / MB, 1) if "cache" in rocksdb else None,
        round(cache["estimated_bytes"] / MB, 1) if "estimated_bytes" in cache else None,
    )


class MemorySampler(threading.Thread):
    """Samples one worker process every ``interval_s`` until stopped."""

    def __init__(self, pid: int, web_port: int, interval_s: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.web_port, self.interval_s = pid, web_port, interval_s
        self.samples: list[MemorySample] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        self._sample(start)
        while not self._stop_event.wait(self.interval_s):
            self._sample(start)
        self._sample(start)  # the end of the phase

    def _sample(self, start: float) -> None:
        gauges: tuple[int | None, float | None, float | None] = (None, None, None)
        with contextlib.suppress(Exception):  # a busy worker may not answer: keep its RSS
            gauges = read_gauges(self.web_port)
        rss = round(proc_rss_mb(self.pid), 1)
        self.samples.append(MemorySample(round(time.monotonic() - start, 1), rss, *gauges))

    def stop(self) -> list[MemorySample]:
        self._stop_event.set()
        self.join(30)
        return self.samples


def summarize(samples: Sequence[MemorySample]) -> dict:
    """RSS at the start, at the end and at its peak, and its growth over the second half of the
    soak per million events routed: once the caches are full that is what a leak would show."""
    if not samples:
        return {}
    rss = [s.rss_mb for s in samples]
    out: dict = {"rss_mb_first": rss[0], "rss_mb_last": rss[-1], "rss_mb_peak": max(rss)}
    counted = [(s.events_routed, s.rss_mb) for s in samples if s.events_routed is not None]
    if len(counted) >= 2:
        (first, _), (last, last_rss) = counted[0], counted[-1]
        halfway = first + (last - first) / 2
        middle, middle_rss = next(c for c in counted if c[0] >= halfway)
        events, grown = last - middle, round(last_rss - middle_rss, 1)
        out["second_half_events"] = events
        out["second_half_rss_mb"] = grown
        if events > 0:
            out["second_half_mb_per_million_events"] = round(1e6 * grown / events, 1)
    return out


def timeline(samples: Sequence[T], rows: int = 10) -> list[T]:
    """At most ``rows`` samples, evenly spread, always the first and the last."""
    if len(samples) <= rows:
        return list(samples)
    step = (len(samples) - 1) / (rows - 1)
    return [samples[round(i * step)] for i in range(rows)]
