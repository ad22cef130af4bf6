"""Pipeline metrics for Prometheus: counters of every drop, hold, fold, delivery and DLQ write by
reason, and how old events are when the router takes them.

The router returns counters keyed by tuples such as ('dropped', 'expired') or
('delivered', 'email', 'digest'); they are summed here and rendered for Prometheus.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Awaitable, Callable

# Label names for each counter family; the tuple's tail fills them in order.
_LABELS = {
    "dropped": ("reason",),
    "held": ("reason",),
    "folded": ("reason",),
    "postponed": ("reason",),
    "replayed": ("reason",),
    "delivered": ("channel", "kind"),
    "dlq": ("reason",),
    "events": ("outcome",),
    "preferences": ("outcome",),
    "commit_flushes": ("outcome",),
    "rebalances": (),
    "fallback": ("outcome",),
    "receipt": ("outcome",),
}


# Seconds. Fine below 0.1 s, where a keeping-up worker's times fall; coarse up to a minute.
SECONDS_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Histogram:
    """A Prometheus histogram of durations in seconds; a negative one counts as 0."""

    def __init__(self, name: str, help_text: str, bounds: tuple[float, ...] = SECONDS_BOUNDS) -> None:
        self.name, self.help_text = name, help_text
        self.bounds = bounds
        self.buckets = [0] * (len(self.bounds) + 1)  # the last one: above every bound
        self.total_s = 0.0
        self.count = 0

    def observe(self, seconds: float, times: int = 1) -> None:
        if seconds < 0.0:
            seconds = 0.0
        self.buckets[bisect_left(self.bounds, seconds)] += times
        self.total_s += seconds * times
        self.count += times

    def prometheus(self) -> str:
        name = self.name
        lines = [f"# HELP {name} {self.help_text}", f"# TYPE {name} histogram"]
        cumulative = 0
        for bound, n in zip(self.bounds, self.buckets, strict=False):
            cumulative += n
            lines.append(f'{name}_bucket{{le="{bound}"}} {cumulative}')
        lines.append(f'{name}_bucket{{le="+Inf"}} {self.count}')
        lines.append(f"{name}_sum {self.total_s!r}")
        lines.append(f"{name}_count {self.count}")
        return "\n".join(lines) + "\n"


class SharedHistogram(Histogram):
    """A histogram that threads other than the event loop's observe (librdkafka's delivery
    reports are served by whichever thread polls or flushes the producer)."""

    def __init__(self, name: str, help_text: str, bounds: tuple[float, ...] = SECONDS_BOUNDS) -> None:
        super().__init__(name, help_text, bounds)
        self._lock = threading.Lock()

    def observe(self, seconds: float, times: int = 1) -> None:
        with self._lock:
            super().observe(seconds, times)

    def prometheus(self) -> str:
        with self._lock:
            return super().prometheus()


class PipelineMetrics:
    def __init__(self) -> None:
        self.counters: Counter = Counter()
        # The input half of the end-to-end latency: the producer's linger, the broker, the
        # worker's fetch wait and its queue, or the lag when the worker falls behind (the record's
        # timestamp is the producer's CreateTime; other hosts' clocks skew it).
        self.event_age = Histogram(
            "notipipe_event_age_at_routing_seconds",
            "Wall clock when the router takes an event's batch minus the event record's timestamp")
        # Event to delivery: the event record's timestamp to the broker's acknowledgement of the
        # deliveries routed from it (immediate ones: holds and digests wait by design). Counted
        # per routed batch, each of its events at the latency of the batch's oldest: an upper
        # bound that costs nothing per event.
        self.delivery_latency = SharedHistogram(
            "notipipe_delivery_latency_seconds",
            "Event record timestamp to the broker's ack of its immediate deliveries (per batch, "
            "at its oldest event)")
        self.commit_latency = Histogram(
            "notipipe_commit_latency_seconds",
            "How long an offset commit waited for the broker to acknowledge the deliveries and "
            "changelog records below it")

    def timed_commit_flush(self, flush: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """``flush`` (run before every offset commit), counted and timed."""
        async def counted() -> None:
            self.inc("commit_flushes", "started")
            started = time.monotonic()
            try:
                await flush()
            except BaseException:
                self.inc("commit_flushes", "failed")
                raise
            self.commit_latency.observe(time.monotonic() - started)
            self.inc("commit_flushes", "done")
        return counted

    def add(self, counters: Counter) -> None:
        self.counters.update(counters)

    def inc(self, *key: str, by: int = 1) -> None:
        self.counters[key] += by

    def as_dict(self) -> dict[str, int]:
        return {".".join(key): value for key, value in sorted(self.counters.items())}

    def prometheus(self) -> str:
        lines: list[str] = []
        families: dict[str, list[tuple[tuple[str, ...], int]]] = {}
        for key, value in self.counters.items():
            families.setdefault(key[0], []).append((key[1:], value))
        for family, rows in sorted(families.items()):
            name = f"notipipe_{family}_total"
            lines.append(f"# TYPE {name} counter")
            labels = _LABELS.get(family, tuple(f"l{i}" for i in range(8)))
            for tail, value in sorted(rows):
                pairs = ",".join(f'{label}="{v}"' for label, v in zip(labels, tail, strict=False))
                lines.append(f"{name}{{{pairs}}} {value}" if pairs else f"{name} {value}")
        histograms = (self.event_age, self.delivery_latency, self.commit_latency)
        return "\n".join(lines) + "\n" + "".join(h.prometheus() for h in histograms)


def prometheus_gauges(gauges: dict[str, float]) -> str:
    """Point-in-time values (memory in use, cache sizes) as ``notipipe_<name>`` gauges."""
    lines: list[str] = []
    for name, value in sorted(gauges.items()):
        lines.append(f"# TYPE notipipe_{name} gauge")
        lines.append(f"notipipe_{name} {value!r}" if isinstance(value, float) and not value.is_integer()
                     else f"notipipe_{name} {int(value)}")
    return "\n".join(lines) + "\n"

