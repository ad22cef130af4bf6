"""The machine description, the printed tables, and the PNG plot."""

from __future__ import annotations

import math
import os
import platform
import subprocess
from pathlib import Path

from stack.settings import StackSettings

from .memory import timeline
from .runner import SystemRun
from .stats import fmt_ms, fmt_rate
from .systems import QUIX_VENV


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return math.nan


def _version(module: str) -> str:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:  # noqa: BLE001
        return "not installed"


def _quix_version() -> str:
    python = QUIX_VENV / "bin" / "python"
    if not python.exists():
        return "not installed"
    out = subprocess.run(
        [
            str(python),
            "-c",
            "import quixstreams, confluent_kafka; "
            "print(quixstreams.__version__, confluent_kafka.__version__)",
        ],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() or "unknown"


def calibration_us() -> float:
    """Best of 5 timings of a fixed pure-Python loop, in microseconds: how fast (and how busy)
    one core is right now. Compare it between runs; a loaded machine shows a higher number."""
    import timeit

    return round(min(timeit.repeat("sum(range(1000))", number=2000, repeat=5)) / 2000 * 1e6, 2)


def machine(stack: StackSettings) -> dict:
    import confluent_kafka

    kafka_jars = sorted((stack.dist_dir / "kafka" / "libs").glob("kafka_2.13-*.jar"))
    broker = kafka_jars[0].name.removeprefix("kafka_2.13-").removesuffix(".jar") if kafka_jars else "unknown"
    load = os.getloadavg()
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _mem_gib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "kafka_broker": f"Apache Kafka {broker} (KRaft, one local broker)",
        "confluent_kafka": f"{confluent_kafka.__version__} (librdkafka {confluent_kafka.libversion()[0]})",
        "faust_streaming": _version("faust-streaming"),
        "aiokafka": _version("aiokafka"),
        "fastavro": _version("fastavro"),
        "rocksdict": _version("rocksdict"),
        "quixstreams": _quix_version(),
        "loadavg_at_start": [round(x, 2) for x in load],
        "calibration_us_at_start": calibration_us(),
        "broker_topics_at_start": _broker_topics(stack),
    }


def _broker_topics(stack: StackSettings) -> dict[str, int]:
    """Every client's metadata refresh (and the worker's garbage collection) grows with the topics
    the broker holds; a stack with thousands left over from earlier runs runs the systems slower."""
    from confluent_kafka.admin import AdminClient

    from .kafka_io import kafka_config

    topics = AdminClient(kafka_config(stack)).list_topics(timeout=15).topics
    return {"topics": len(topics), "partitions": sum(len(t.partitions) for t in topics.values())}


def describe_machine(m: dict) -> str:
    return (
        f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}\n"
        f"software: Python {m['python']}, {m['kafka_broker']}, confluent-kafka {m['confluent_kafka']}, "
        f"faust-streaming {m['faust_streaming']}, aiokafka {m['aiokafka']}, quixstreams+its confluent-kafka "
        f"{m['quixstreams']}\nload average at start: {m['loadavg_at_start']}; "
        f"speed check sum(range(1000)): {m['calibration_us_at_start']} us (lower = faster core)\n"
        f"broker at start: {m['broker_topics_at_start']['topics']} topics, "
        f"{m['broker_topics_at_start']['partitions']} partitions"
    )


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            str(c).rjust(w) if i else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=False))
        )

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _ratio(value: float, ref: float) -> str:
    if not (math.isfinite(value) and math.isfinite(ref)) or ref <= 0:
        return "-"
    return f"{value / ref:.2f}x"


def tables(runs: list[SystemRun], core: dict | None = None) -> str:
    out = []
    if core:
        rows = [
            [st["stage"], fmt_rate(st["events_per_s"]), f"{st['us_per_event']:.1f}"] for st in core["stages"]
        ]
        out.append(
            f"The rules alone, in-process on one core, no Kafka ({core['events']} events of the burst): "
            "the ceiling for any Python runtime around them"
        )
        out.append(_table(["cumulative step", "events/s", "us/event"], rows))
        out.append("")
    ref = {r.workers: r.max_rate for r in runs if r.system == "notipipe" and not r.error}
    ref_cpu = {}
    for r in runs:
        burst = r.median_burst()
        if r.system == "notipipe" and burst is not None:
            ref_cpu[r.workers] = burst.events_per_cpu_s
    one = ref.get(1, math.nan)
    rows = []
    for r in runs:
        p = r.median_burst()
        if r.error or p is None:
            rows.append([r.label, str(r.workers), "FAILED", *[""] * 11, (r.error or "")[:60]])
            continue
        rates = sorted(b.events_per_s for b in r.max_bursts())
        scale = (
            _ratio(p.events_per_s, ref.get(1, math.nan)) if r.workers > 1 and r.system == "notipipe" else ""
        )
        rows.append(
            [
                r.label,
                str(r.workers),
                fmt_rate(p.events_per_s),
                f"{len(rates)}: {fmt_rate(rates[0])}-{fmt_rate(rates[-1])}" if len(rates) > 1 else "1",
                fmt_rate(p.deliveries_per_s),
                _ratio(p.events_per_s, ref.get(r.workers, math.nan)),
                fmt_rate(p.events_per_cpu_s),
                _ratio(p.events_per_cpu_s, ref_cpu.get(r.workers, math.nan)),
                f"{1000 * p.broker_cpu_s / p.events:.2f}" if p.events else "-",
                f"{p.disk_write_bytes / p.events:.0f}" if p.events else "-",
                f"{r.totals.get('max_phase_complete', math.nan):.3f}" if r.totals else "-",
                "/".join(f"{x:.0f}" for x in r.totals.get("rss_mb_end", [])) if r.totals else "-",
                f"{100 * r.idle_cpu_share:.0f}%" if math.isfinite(r.idle_cpu_share) else "-",
                f"{p.other_cores:.2f}" if math.isfinite(p.other_cores) else "-",
                scale,
            ]
        )
    out.append(
        "Maximum sustained throughput (burst, 10-90 % completion, counted from the delivery topics; "
        "the median of the bursts, their range beside it)"
    )
    out.append(
        _table(
            [
                "system",
                "workers",
                "events/s",
                "bursts",
                "deliv/s",
                "vs notipipe",
                "ev/CPU-s",
                "vs (CPU)",
                "broker CPU-ms/ev",
                "disk B/ev",
                "complete",
                "RSS MB end",
                "idle CPU",
                "others' cores",
                "vs 1 worker",
            ],
            rows,
        )
    )
    _ = one
    out.extend(_fallback_comparison(runs))

    rows = []
    for r in runs:
        for p in r.phase("rate"):
            lat = p.latency_ms
            split = p.extra.get("latency_split_ms", {})
            rows.append(
                [
                    r.label,
                    str(r.workers),
                    f"{round(100 * p.extra.get('fraction', 0))}%",
                    fmt_rate(p.offered_rate or math.nan),
                    fmt_rate(p.events_per_s),
                    fmt_ms(lat["p50"]),
                    fmt_ms(lat["p95"]),
                    fmt_ms(lat["p99"]),
                    fmt_ms(lat["max"]),
                    fmt_ms(split.get("to_routing", {}).get("p99", math.nan)),
                    fmt_ms(split.get("routing_to_append", {}).get("p99", math.nan)),
                    str(p.peak_lag),
                    _kept_up(p),
                ]
            )
    if rows:
        out.append("\nLatency at fixed offered load (produce -> delivery append, immediate deliveries, ms)")
        out.append(
            _table(
                [
                    "system",
                    "workers",
                    "load",
                    "offered/s",
                    "achieved/s",
                    "p50",
                    "p95",
                    "p99",
                    "max",
                    "p99 to routed",
                    "p99 routed to append",
                    "peak lag",
                    "kept up",
                ],
                rows,
            )
        )
        out.append(
            "(the two right-hand p99s split each latency at the delivery's created_at, when the "
            "system routed the event)"
        )

    rows = []
    for r in runs:
        for p in r.phase("spike"):
            e = p.extra
            sl = e.get("spike_latency_ms", {})
            rows.append(
                [
                    r.label,
                    str(r.workers),
                    fmt_rate(e.get("base_rate", math.nan)),
                    fmt_rate(e.get("spike_rate", math.nan)),
                    f"{e.get('spike_s', 0):.0f}s",
                    str(p.peak_lag),
                    f"{e.get('drain_s', math.nan):.1f}s",
                    fmt_ms(sl.get("p99", math.nan)),
                    fmt_ms(sl.get("max", math.nan)),
                ]
            )
    if rows:
        out.append(
            "\n10x spike (base = 25 % of max; lag from committed offsets; "
            "drain = spike end -> last spike event delivered)"
        )
        out.append(
            _table(
                ["system", "workers", "base/s", "spike/s", "for", "peak lag", "drain", "p99 ms", "max ms"],
                rows,
            )
        )

    rows, timelines = [], []
    for r in runs:
        for p in r.phase("soak"):
            timelines.extend(_soak_memory(p.extra.get("memory_samples") or [], p.extra.get("memory_summary")))
            rows.append(
                [
                    r.label,
                    str(r.workers),
                    str(p.events),
                    fmt_rate(p.offered_rate or math.nan),
                    fmt_ms(p.latency_ms["p99"]),
                    str(r.max_bursts()[-1].rss_mb if r.max_bursts() else "-"),
                    str(p.rss_mb),
                ]
            )
    if rows:
        out.append("\nSoak (memory): RSS after the max bursts and after the soak")
        out.append(
            _table(["system", "workers", "events", "rate/s", "p99 ms", "RSS MB before", "RSS MB after"], rows)
        )
        out.extend(timelines)
    return "\n".join(out)


def _fallback_comparison(runs: list[SystemRun]) -> list[str]:
    """The worker's events per CPU-second without and with fallback chains, from the same run: the
    median bursts, and every phase together (CPU seconds over events), which takes in the timed-out
    fallbacks of a phase that go out during the next."""
    rows = []
    for on in runs:
        if on.system != "notipipe-fallback" or on.error:
            continue
        off = next((r for r in runs
                    if r.system == "notipipe" and r.workers == on.workers and not r.error), None)
        if off is None:
            continue
        pair = []
        for r in (off, on):
            burst = r.median_burst()
            cpu = sum(p.sut_cpu_s for p in r.phases)
            pair.append((burst.events_per_cpu_s if burst else math.nan,
                         sum(p.events for p in r.phases) / cpu if cpu > 0 else math.nan))
        (burst_off, all_off), (burst_on, all_on) = pair
        counters = on.totals.get("worker_fallback_counters", {})
        rows.append([str(on.workers), fmt_rate(burst_off), fmt_rate(burst_on), _ratio(burst_on, burst_off),
                     fmt_rate(all_off), fmt_rate(all_on), _ratio(all_on, all_off),
                     str(counters.get("fallback.watched", 0)), str(counters.get("fallback.sent", 0)),
                     str(counters.get("fallback.cleared", 0))])
    if not rows:
        return []
    return ["\nFallback chains off vs on (notipipe worker, ev/CPU-s of its processes; receipts flow in both)",
            _table(["workers", "burst off", "burst on", "on/off", "all phases off", "all phases on",
                    "on/off", "watched", "fell back", "cleared"], rows)]


def _soak_memory(samples: list[dict], summary: dict | None) -> list[str]:
    """The soak's RSS next to the caches that explain it, and the growth in its second half."""
    if not samples:
        return []
    base = next((s["events_routed"] for s in samples if s["events_routed"] is not None), None)

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:,.0f}"

    rows = [
        [
            f"{s['elapsed_s']:.0f}",
            _millions(s["events_routed"], base),
            f"{s['rss_mb']:.0f}",
            cell(s["rocksdb_mb"]),
            cell(s["state_cache_mb"]),
        ]
        for s in timeline(samples)
    ]
    lines = [
        "\nSoak memory over time (RSS of the worker; RocksDB: its block cache with the memtables; "
        "state cache: its own estimate):",
        _table(["s", "events", "RSS MB", "RocksDB MB", "state cache MB"], rows),
    ]
    if summary and "second_half_mb_per_million_events" in summary:
        per_million = summary["second_half_mb_per_million_events"]
        lines.append(
            f"RSS peak {summary['rss_mb_peak']:.0f} MB; over the soak's second half "
            f"({summary['second_half_events'] / 1e6:.2f}M events) it moved "
            f"{summary['second_half_rss_mb']:+.1f} MB ({per_million:+.1f} MB per million events). "
            "Rising while the caches fill to their budgets is expected; rising once they are full is not."
        )
    return lines


def _millions(count: int | None, base: int | None) -> str:
    return "-" if count is None or base is None else f"{(count - base) / 1e6:.2f}M"


def _kept_up(p) -> str:  # noqa: ANN001 - a PhaseResult
    """'yes' when the achieved rate was within 5 % of the offered one and the group caught up."""
    if not p.caught_up:
        return "no"
    if p.offered_rate and math.isfinite(p.events_per_s):
        return "yes" if p.events_per_s >= 0.95 * p.offered_rate else "no"
    return "-"


def profile_text(profile: dict | None, top: int = 15) -> str:
    if not profile:
        return ""
    if "error" in profile:
        return f"\nprofile: {profile['error']}"
    lines = [
        f"\nWhere the notipipe worker's CPU time goes (py-spy, {profile['samples']} on-CPU samples, "
        f"{fmt_rate(profile.get('events_per_s_under_profiler', math.nan))} ev/s under the profiler)",
        "  self time by area:",
    ]
    per_event = dict(profile.get("us_per_event_by_category", []))
    lines += [
        f"    {pct:5.1f}%  {per_event.get(name, math.nan):7.1f} us/event  {name}"
        for name, pct in profile["self_by_category"]
    ]
    if "cpu_us_per_event" in profile:
        lines.append(f"    (worker CPU per event under the profiler: {profile['cpu_us_per_event']} us)")
    lines.append("  inclusive time, top functions:")
    lines += [f"    {pct:5.1f}%  {name}" for name, pct in profile["inclusive_by_function"][:top]]
    lines.append("  self time, top functions:")
    lines += [f"    {pct:5.1f}%  {name}" for name, pct in profile["self_by_function"][:top]]
    lines.append(f"  flame graph: {profile.get('svg')}")
    return "\n".join(lines)


def plot(runs: list[SystemRun], path: Path, title: str) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5.2))
    for r in runs:
        points = [p for p in r.phase("rate") if p.offered_rate]
        if not points:
            continue
        label = f"{r.label} ({r.workers}w)"
        xs = [p.offered_rate for p in points]
        ax1.plot(xs, [p.events_per_s for p in points], marker="o", label=label)
        ax2.plot(xs, [p.latency_ms["p99"] for p in points], marker="o", label=f"{label} p99")
        ax2.plot(
            xs,
            [p.latency_ms["p50"] for p in points],
            marker=".",
            linestyle=":",
            label=f"{label} p50",
            color=ax2.lines[-1].get_color(),
        )
        m = r.median_burst()
        if m is not None:
            ax1.scatter(
                [m.events_per_s], [m.events_per_s], marker="*", s=120, color=ax1.lines[-1].get_color()
            )
    offered = [p.offered_rate for r in runs for p in r.phase("rate") if p.offered_rate]
    if offered:
        lo, hi = min(offered) * 0.8, max(offered) * 1.25
        ax1.plot([lo, hi], [lo, hi], color="grey", linewidth=0.8, linestyle="--", label="achieved = offered")
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.set_xlabel("offered load (events/s)")
        ax.grid(True, which="both", alpha=0.3)
    ax1.set_yscale("log")
    ax1.set_ylabel("achieved throughput (events/s)")
    ax1.set_title("Throughput vs offered load (* = burst maximum)")
    ax2.set_yscale("log")
    ax2.set_ylabel("latency produce -> delivery append (ms)")
    ax2.set_title("Latency vs offered load")
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=6, ncol=2)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
