"""Pure arithmetic of the benchmark: percentiles, rate schedules (pacing) and throughput windows.

No Kafka, no clocks: everything takes numbers in and gives numbers out, so it is unit-tested.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of values sorted ascending; NaN for no values.

    Nearest rank never invents a value between two samples, so p100 is the max and p50 of
    [1, 2, 3, 4] is 2: the value at or below which at least q % of the samples lie.
    """
    n = len(sorted_values)
    if n == 0:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q={q} outside 0..100")
    rank = max(1, math.ceil(q / 100 * n))
    return float(sorted_values[rank - 1])


def latency_summary(values_ms: Sequence[float]) -> dict[str, float | int]:
    """count, p50, p95, p99, max (and mean) of latencies in milliseconds."""
    ordered = sorted(values_ms)
    if not ordered:
        return {
            "count": 0,
            "p50": math.nan,
            "p95": math.nan,
            "p99": math.nan,
            "max": math.nan,
            "mean": math.nan,
        }
    return {
        "count": len(ordered),
        "p50": percentile(ordered, 50),
        "p95": percentile(ordered, 95),
        "p99": percentile(ordered, 99),
        "max": float(ordered[-1]),
        "mean": sum(ordered) / len(ordered),
    }


def latency_by_window(
    sent_and_latency_ms: Sequence[tuple[float, float]], start_ms: float, window_ms: float = 1000.0
) -> list[dict[str, float | int]]:
    """Latency per window of send time (``start_s`` from ``start_ms``), for windows with samples.

    A p99 made by a few stalls (a pause, a commit, a flush) shows as one or two windows with a
    high max among quiet ones; a p99 made by steady queueing shows in every window."""
    buckets: dict[int, list[float]] = {}
    for sent_ms, latency in sent_and_latency_ms:
        buckets.setdefault(int((sent_ms - start_ms) // window_ms), []).append(latency)
    return [
        {"start_s": index * window_ms / 1000, **latency_summary(values)}
        for index, values in sorted(buckets.items())
    ]


@dataclass(frozen=True)
class Segment:
    duration_s: float
    rate: float  # events per second; math.inf: as fast as possible


class Schedule:
    """A piecewise-constant offered rate: how many events should have been sent by time t.

    The producer sends ``events_due(elapsed) - sent`` events whenever it wakes up, so it catches
    up after a late wake-up instead of drifting: the long-run rate is exact whatever the sleep
    granularity.
    """

    def __init__(self, segments: Sequence[Segment]) -> None:
        if not segments:
            raise ValueError("a schedule needs at least one segment")
        for seg in segments:
            if seg.duration_s < 0 or seg.rate < 0:
                raise ValueError(f"negative duration or rate in {seg}")
        self.segments = tuple(segments)

    @classmethod
    def constant(cls, rate: float, duration_s: float) -> Schedule:
        return cls([Segment(duration_s, rate)])

    @property
    def duration_s(self) -> float:
        return sum(s.duration_s for s in self.segments)

    def total_events(self) -> int:
        """Events the whole schedule offers (an infinite-rate segment has no finite count)."""
        return self.events_due(self.duration_s)

    def events_due(self, elapsed_s: float) -> int:
        """Events that should have been sent ``elapsed_s`` seconds after the start."""
        if elapsed_s <= 0:
            return 0
        total = 0.0
        start = 0.0
        for seg in self.segments:
            if elapsed_s <= start:
                break
            if math.isinf(seg.rate):
                raise ValueError("events_due is undefined for an infinite-rate segment")
            span = min(elapsed_s, start + seg.duration_s) - start
            total += seg.rate * span
            start += seg.duration_s
        # floor, with a tolerance so that 0.1 * 30 == 3 is not 2.9999999
        return int(math.floor(total + 1e-9))

    def wait_s(self, sent: int, elapsed_s: float) -> float:
        """How long to sleep until event number ``sent`` (0-based) is due; 0 if already due."""
        if self.events_due(elapsed_s) > sent:
            return 0.0
        start = 0.0
        before = 0.0
        for seg in self.segments:
            end = start + seg.duration_s
            count_at_end = before + seg.rate * seg.duration_s
            if count_at_end + 1e-9 >= sent + 1:
                t = start + (sent + 1 - before) / seg.rate if seg.rate > 0 else end
                return max(0.0, t - elapsed_s)
            start, before = end, count_at_end
        return max(0.0, self.duration_s - elapsed_s)

    def segment_at(self, elapsed_s: float) -> int:
        """Index of the segment that is offered at ``elapsed_s`` (the last one after the end)."""
        start = 0.0
        for i, seg in enumerate(self.segments):
            start += seg.duration_s
            if elapsed_s < start:
                return i
        return len(self.segments) - 1


def sustained_rate(done_times_ms: Sequence[int], total: int, lo: float = 0.1, hi: float = 0.9) -> float:
    """Rate between lo and hi completion: ``(hi - lo) * total / (T(hi) - T(lo))`` events per second.

    ``done_times_ms``: when each observed unit of work was finished (e.g. the append time of each
    immediate delivery); they are a sample of the ``total`` events, spread evenly over them, so the
    quantiles of those times are the times by which that fraction of all events was done. Cutting
    the first and last 10 % leaves out start-up and the tail of the last partition.
    """
    ordered = sorted(done_times_ms)
    if len(ordered) < 10 or total <= 0:
        return math.nan
    t_lo = percentile(ordered, lo * 100)
    t_hi = percentile(ordered, hi * 100)
    if t_hi <= t_lo:
        return math.nan
    return (hi - lo) * total / ((t_hi - t_lo) / 1000.0)


def fmt_rate(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if value >= 10_000:
        return f"{value / 1000:.1f}K"
    if value >= 1000:
        return f"{value / 1000:.2f}K"
    return f"{value:.0f}"


def fmt_ms(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if value >= 10_000:
        return f"{value / 1000:.1f}s"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}"
