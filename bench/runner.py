"""Runs the phases of the benchmark against one system under test and measures them from the topics.

For each (system, worker count), on a topic prefix of its own:

1. create topics and schemas; delivery topics stamp LogAppendTime;
2. load preferences for every user, start the system's processes, wait until the group has
   committed the whole preferences topic, then a warm-up burst;
3. ``max``: a burst of N events as fast as the producer can write them; the sustained rate is
   taken between 10 % and 90 % completion from the append times of the immediate deliveries;
4. fixed offered rates (a share of that maximum) for a few seconds each: latency = delivery's
   append time (broker) - event's produce time (the event record's CreateTime);
5. a 10x spike on top of a base rate: peak consumer lag (committed offsets, as lag tools see it)
   and time to drain (until the last event produced during the spike was delivered);
6. wait for due digests, then count distinct delivery ids and event ids.

CPU seconds of the system's processes and of the broker are read from /proc around each phase:
on a shared 2-core machine events per CPU-second is steadier than events per wall second.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import math
import shutil
import statistics
import time
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from stack.process import read_pid
from stack.schemas_setup import registry_client
from stack.settings import StackSettings
from stack.topics_setup import delete_topics_containing
from streams.contracts.avro_codec import AvroCodec, wire_header
from streams.contracts.schemas import load_schema, subject_for
from streams.contracts.topics import Topics
from streams.core.model import Event
from streams.core.routing.router import route
from streams.core.routing.state import UserState
from streams.core.routing.validation import decode_event
from streams.core.settings import RouterSettings

from . import kafka_io
from .core import measure_core
from .kafka_io import DeliveryRecord, LagSampler, OffsetProbe, PacedSend
from .memory import MemorySampler, summarize
from .profile import Profiler
from .receipts import ReceiptResponder
from .stats import Schedule, Segment, latency_by_window, latency_summary, sustained_rate
from .systems import SYSTEMS, Running, System, machine_cpu_s, proc_cpu_s
from .workload import EventStream, WorkloadSpec, preferences_for

IMMEDIATE_REASONS = frozenset({"immediate", "critical"})


@dataclass
class BenchConfig:
    quick: bool
    events: int  # size of the max-throughput burst
    max_runs: int  # bursts per system; the tables use their median (this VM's speed varies)
    rate_base: float | None  # rate phases as fractions of this, not of the measured maximum
    workload: WorkloadSpec
    partitions: int
    runs: list[tuple[str, int]]  # (system, worker processes), in order
    phases_workers: list[int]  # worker counts that also get the rate sweep and the spike
    rate_fractions: list[float]
    rate_phase_s: float
    spike_base_fraction: float
    spike_factor: float
    spike_pre_s: float
    spike_s: float
    spike_post_s: float
    warmup_events: int
    soak_events: int
    profile: bool
    router_env: dict[str, str]
    receipt_share: float  # of the e-mail, SMS and push deliveries, answered with a receipt
    out_dir: Path
    log: Callable[[str], None] = print


@dataclass
class PhaseResult:
    name: str
    kind: str  # warmup | max | max_repeat | rate | spike | soak | profile
    events: int
    offered_rate: float | None  # None: a burst
    duration_s: float  # from the first event produced to caught up
    events_per_s: float  # sustained (10-90 %) from delivery append times
    deliveries_per_s: float
    deliveries: int
    latency_ms: dict[str, float | int]
    sut_cpu_s: float
    broker_cpu_s: float
    machine_cpu_s: float
    bench_cpu_s: float
    peak_lag: int
    caught_up: bool
    rss_mb: list[float]
    sender_late_s: float
    extra: dict = field(default_factory=dict)
    events_per_cpu_s: float = math.nan  # events / CPU seconds of the system's processes
    other_cores: float = math.nan  # cores used by other processes during the phase (noise)
    disk_write_bytes: int = 0  # written to storage by the system's processes (/proc/<pid>/io)


@dataclass
class SystemRun:
    system: str
    label: str
    workers: int
    prefix: str
    phases: list[PhaseResult] = field(default_factory=list)
    totals: dict = field(default_factory=dict)
    error: str | None = None
    startup_s: float = math.nan
    idle_cpu_share: float = math.nan  # CPU seconds per second with no input (all processes)
    profile: dict | None = None

    def phase(self, kind: str) -> list[PhaseResult]:
        return [p for p in self.phases if p.kind == kind]

    def max_bursts(self) -> list[PhaseResult]:
        """The max phase and its repeats (all bursts of the same size)."""
        return self.phase("max") + self.phase("max_repeat")

    def median_burst(self) -> PhaseResult | None:
        """The burst with the median sustained rate (of two, the slower): what the tables show."""
        bursts = sorted(
            (p for p in self.max_bursts() if math.isfinite(p.events_per_s)), key=lambda p: p.events_per_s
        )
        return bursts[(len(bursts) - 1) // 2] if bursts else None

    @property
    def max_rate(self) -> float:
        burst = self.median_burst()
        return burst.events_per_s if burst else math.nan


def _retag(values: Sequence[bytes], schema_id: int) -> list[bytes]:
    header = wire_header(schema_id)
    if values and values[0][:5] == header:
        return list(values)
    return [header + v[5:] for v in values]


class Workload:
    """Pre-built records shared by every system: preferences and the max-phase burst."""

    def __init__(self, cfg: BenchConfig, codec_for: Callable[[str], AvroCodec]) -> None:
        self.cfg = cfg
        spec = cfg.workload
        codec = codec_for("bench-build.")
        self.prefs = preferences_for(spec)
        prefs_subject = subject_for("bench-build.notifications.preferences")
        events_subject = subject_for("bench-build.notifications.events")
        self.pref_keys = [p.user_id.encode() for p in self.prefs]
        self.pref_values = [codec.encode(prefs_subject, p.to_avro()) for p in self.prefs]
        stream = EventStream(dataclasses.replace(spec, seed=spec.seed + 1))
        self.max_keys, self.max_values, self.max_ids = stream.phase(
            "max", cfg.events, lambda e: codec.encode(events_subject, e.to_avro())
        )
        self._codec = codec
        self.expected_max = self._expected_delivered(self.max_values)

    def _expected_delivered(self, values: Sequence[bytes]) -> set[str]:
        """Event ids the rules deliver (now or in a digest), from the pure router in-process."""
        rs = RouterSettings.from_env(self.cfg.router_env)
        prefs = {p.user_id: p for p in self.prefs}
        states: dict[str, UserState] = {}
        delivered: set[str] = set()
        now = int(time.time() * 1000)
        for offset, value in enumerate(values):
            _, record = self._codec.decode(value)
            event: Event = decode_event(record)
            state = states.setdefault(event.user_id, UserState())
            result = route(event, prefs.get(event.user_id), state, now, (0, offset), rs)
            for d in result.deliveries:
                delivered.update(d.event_ids)
        for state in states.values():
            for hold in state.holds.values():
                delivered.update(hold.event_ids)
        return delivered


def _codec_factory(stack: StackSettings) -> Callable[[str], AvroCodec]:
    registry = registry_client(stack)  # registers the run's schemas: the writer's credentials

    def make(prefix: str) -> AvroCodec:
        codec = AvroCodec(registry, auto_register=True)
        codec.add_subject(subject_for(f"{prefix}notifications.events"), load_schema("notification_event"))
        codec.add_subject(subject_for(f"{prefix}notifications.preferences"), load_schema("user_preferences"))
        codec.add_subject(subject_for(f"{prefix}notifications.receipts"), load_schema("delivery_status"))
        return codec

    return make


class SystemBench:
    """One system with a given number of workers, through all its phases."""

    def __init__(
        self,
        cfg: BenchConfig,
        stack: StackSettings,
        system: System,
        workers: int,
        workload: Workload,
        run_id: str,
        base_port: int,
    ) -> None:
        self.cfg, self.stack, self.system, self.workers = cfg, stack, system, workers
        self.workload = workload
        self.prefix = f"bench{run_id}.{system.name.replace('-', '')}{workers}."
        self.result = SystemRun(system.name, system.label, workers, self.prefix)
        self.base_port = base_port
        self.data_dir = stack.cache_dir / "bench" / "data" / self.prefix.rstrip(".")
        self.log_dir = cfg.out_dir / "logs" / run_id
        self.run_id = run_id
        self.running: Running | None = None
        self.responder: ReceiptResponder | None = None
        self.broker_pid = read_pid(stack.run_dir / "kafka.pid")
        self.stream_seed = 100
        self._all_records: list[DeliveryRecord] = []
        self._last_records: list[DeliveryRecord] = []

    # --- helpers ----------------------------------------------------------------------------------
    def _cpu(self) -> tuple[float, float, float, float]:
        assert self.running is not None
        return (
            self.running.cpu_s(),
            proc_cpu_s(self.broker_pid) if self.broker_pid else 0.0,
            machine_cpu_s(),
            time.process_time(),
        )

    def _events_subject_id(self) -> int:
        return self.codec.schema_id(subject_for(self.topics.events))

    def _gen(self, name: str, count: int) -> tuple[list[bytes], list[bytes], list[str]]:
        self.stream_seed += 1
        spec = dataclasses.replace(self.cfg.workload, seed=self.cfg.workload.seed + self.stream_seed)
        subject = subject_for(self.topics.events)
        return EventStream(spec).phase(name, count, lambda e: self.codec.encode(subject, e.to_avro()))

    # --- the run ----------------------------------------------------------------------------------
    def run(self) -> SystemRun:
        _cfg, log = self.cfg, self.cfg.log
        log(f"== {self.system.label}, {self.workers} worker(s), prefix {self.prefix}")
        try:
            self._setup()
            self._phases()
        except Exception as exc:  # noqa: BLE001 - one failed system must not lose the others
            self.result.error = f"{type(exc).__name__}: {exc}"
            log(f"   FAILED: {self.result.error}")
            if self.running is not None:
                log(self.running.log_tail(15))
        finally:
            self._teardown()
        return self.result

    def _setup(self) -> None:
        cfg, log = self.cfg, self.cfg.log
        self.topics: Topics = kafka_io.create_pipeline(self.stack, self.prefix, cfg.partitions)
        self.codec = _codec_factory(self.stack)(self.prefix)
        self.probe = OffsetProbe(self.stack)
        self.reader = kafka_io.DeliveryReader(self.stack, self.topics)
        self.producer = kafka_io.make_producer(self.stack)
        if cfg.receipt_share > 0:
            self.responder = ReceiptResponder(self.stack, self.topics, self.codec, cfg.receipt_share)
            self.responder.start()
        prefs_id = self.codec.schema_id(subject_for(self.topics.preferences))
        kafka_io.produce_all(
            self.producer,
            self.topics.preferences,
            self.workload.pref_keys,
            _retag(self.workload.pref_values, prefs_id),
        )
        started = time.monotonic()
        self.running = Running(
            self.system,
            self.stack,
            self.prefix,
            self.workers,
            self.data_dir,
            self.log_dir,
            cfg.router_env,
            self.base_port,
        )
        waited = kafka_io.wait_caught_up(
            self.probe, self.running.group, self.topics.preferences, timeout_s=240, alive=self.running.alive
        )
        if waited is None:
            raise RuntimeError(
                "the system did not consume the preferences within 240 s"
                + ("" if self.running.alive() else " (a process exited)")
            )
        self.result.startup_s = time.monotonic() - started
        log(
            f"   up, {len(self.workload.pref_keys)} preferences loaded in {self.result.startup_s:.1f}s; "
            f"rss {self.running.rss_mb()} MB"
        )
        keys, values, ids = self._gen("warmup", cfg.warmup_events)
        self._phase(
            "warmup", "warmup", keys, values, ids, Schedule.constant(max(200.0, cfg.warmup_events / 2), 2.0)
        )
        self.reader.read_new()
        # Idle cost: CPU the processes burn with no input (timers, polling, commits).
        cpu0, t0 = self.running.cpu_s(), time.monotonic()
        time.sleep(5.0)
        self.result.idle_cpu_share = round((self.running.cpu_s() - cpu0) / (time.monotonic() - t0), 3)
        log(f"   idle: {100 * self.result.idle_cpu_share:.0f} % of a core with no input")

    def _phases(self) -> None:
        cfg, log = self.cfg, self.cfg.log
        keys = self.workload.max_keys
        values = _retag(self.workload.max_values, self._events_subject_id())
        self._phase("max", "max", keys, values, self.workload.max_ids, None)
        self._max_records = self._last_records
        # More bursts of the same size (fresh event ids): one burst's rate moves by a third
        # between runs on this VM; the median of a few is what the tables compare.
        for n in range(2, cfg.max_runs + 1):
            k, v, i = self._gen(f"max{n}", len(keys))
            self._phase(f"max{n}", "max_repeat", k, v, i, None)
        max_rate = self.result.max_rate
        if not math.isfinite(max_rate) or max_rate <= 0:
            raise RuntimeError("no sustained rate measured in the max phase")
        if cfg.max_runs > 1:
            rates = sorted(p.events_per_s for p in self.result.max_bursts())
            log(f"   max: median {max_rate:,.0f} ev/s of {len(rates)} bursts "
                f"({rates[0]:,.0f}-{rates[-1]:,.0f})")
        if cfg.rate_base:
            max_rate = cfg.rate_base
            log(f"   rate phases as fractions of {max_rate:,.0f} ev/s (--rate-base)")
        if self.workers in cfg.phases_workers:
            for fraction in cfg.rate_fractions:
                rate = fraction * max_rate
                count = max(1, int(rate * cfg.rate_phase_s))
                name = f"rate{int(round(fraction * 100))}"
                k, v, i = self._gen(name, count)
                p = self._phase(name, "rate", k, v, i, Schedule.constant(rate, cfg.rate_phase_s))
                p.extra["fraction"] = fraction
            base = cfg.spike_base_fraction * max_rate
            schedule = Schedule(
                [
                    Segment(cfg.spike_pre_s, base),
                    Segment(cfg.spike_s, base * cfg.spike_factor),
                    Segment(cfg.spike_post_s, base),
                ]
            )
            k, v, i = self._gen("spike", schedule.total_events())
            self._phase("spike", "spike", k, v, i, schedule)
        if cfg.soak_events and self.system.name == "notipipe" and self.workers == 1:
            rate = 0.5 * max_rate
            k, v, i = self._gen("soak", cfg.soak_events)
            self._phase("soak", "soak", k, v, i, Schedule.constant(rate, cfg.soak_events / rate))
        if cfg.profile and self.system.name == "notipipe" and self.workers == 1:
            # ~20 s (quick) or ~60 s (full) of samples at the measured maximum
            count = max(2000, min(cfg.events, int(max_rate * (20 if cfg.quick else 60))))
            k, v, i = self._gen("profile", count)
            profiler = Profiler(self.running.pids[0], cfg.out_dir / "profile" / self.run_id)
            profiler.start()
            p = self._phase("profile", "profile", k, v, i, None)
            self.result.profile = profiler.stop()
            prof = self.result.profile
            prof["events_per_s_under_profiler"] = p.events_per_s
            prof["events"] = p.events
            prof["worker_cpu_s"] = p.sut_cpu_s
            if prof.get("samples"):
                # The worker's measured CPU time per event, split by the profile's shares.
                per_event = 1e6 * p.sut_cpu_s / p.events
                prof["cpu_us_per_event"] = round(per_event, 1)
                prof["us_per_event_by_category"] = [
                    (name, round(pct / 100 * per_event, 1)) for name, pct in prof["self_by_category"]
                ]
            log(f"   profile: {self.result.profile.get('svg')}")
        self._finish()

    def _phase(
        self,
        name: str,
        kind: str,
        keys: Sequence[bytes],
        values: Sequence[bytes],
        ids: Sequence[str],
        schedule: Schedule | None,
    ) -> PhaseResult:
        assert self.running is not None
        cfg = self.cfg
        offered = None if schedule is None else (len(keys) / schedule.duration_s)
        sampler = LagSampler(self.stack, self.running.group, self.topics.events)
        # The load generator must not pause mid-phase: a full collection over the workload and
        # the records of earlier phases took 0.1-0.5 s here and stalled the sender, which then
        # caught up in a burst. Frozen objects are left out of later collections.
        gc.collect()
        gc.freeze()
        cpu0 = self._cpu()
        disk0 = self.running.disk_write_bytes()
        wall0 = time.monotonic()
        sampler.start()
        memory = None
        if kind == "soak" and schedule is not None:  # RSS and the memory gauges, ~40 times
            interval = min(60.0, max(5.0, schedule.duration_s / 40))
            memory = MemorySampler(self.running.pids[0], self.base_port, interval)
            memory.start()
        sender = PacedSend(self.producer, self.topics.events, keys, values, schedule)
        sender.run()
        known = self.result.max_rate if kind not in ("max", "max_repeat") else math.nan
        budget = 60 + 4 * len(keys) / max(100.0, known if math.isfinite(known) else 500.0)
        waited = kafka_io.wait_caught_up(
            self.probe, self.running.group, self.topics.events, timeout_s=budget, alive=self.running.alive
        )
        kafka_io.wait_quiet(self.probe, list(self.topics.all_deliveries().values()), quiet_s=1.0,
                            timeout_s=60)
        cpu1 = self._cpu()
        disk1 = self.running.disk_write_bytes()
        wall = time.monotonic() - wall0
        samples = sampler.stop()
        memory_samples = memory.stop() if memory else []
        records = self.reader.read_new()
        self._last_records = records
        self._all_records.extend(records)
        result = self._measure(name, kind, ids, sender, records, schedule, offered)
        result.sut_cpu_s = cpu1[0] - cpu0[0]
        result.events_per_cpu_s = len(keys) / result.sut_cpu_s if result.sut_cpu_s > 0 else math.nan
        result.broker_cpu_s = cpu1[1] - cpu0[1]
        result.disk_write_bytes = max(0, disk1 - disk0)  # a process that died takes its count
        result.machine_cpu_s = cpu1[2] - cpu0[2]
        result.bench_cpu_s = cpu1[3] - cpu0[3]
        # Cores busy with anything else on the machine meanwhile (other tests, Connect, registry):
        # the noise this phase ran under.
        result.other_cores = (
            round(
                (result.machine_cpu_s - result.sut_cpu_s - result.broker_cpu_s - result.bench_cpu_s) / wall, 2
            )
            if wall > 0
            else math.nan
        )
        result.peak_lag = max((lag for _, lag in samples), default=0)
        result.caught_up = waited is not None
        result.rss_mb = self.running.rss_mb()
        result.sender_late_s = round(sender.late_s, 3)
        if memory_samples:
            result.extra["memory_samples"] = [dataclasses.asdict(m) for m in memory_samples]
            result.extra["memory_summary"] = summarize(memory_samples)
        if kind == "spike":
            result.extra["lag_samples"] = [
                (round(t - sender.started_ms / 1000, 2), lag) for t, lag in samples
            ]
        self.result.phases.append(result)
        lat = result.latency_ms
        cfg.log(
            f"   {name:<8} {len(keys):>8} ev  offered {_r(offered):>9}/s  "
            f"sustained {_r(result.events_per_s):>9} ev/s  {_r(result.deliveries_per_s):>9} del/s  "
            f"p50 {_m(lat['p50'])} p99 {_m(lat['p99'])} max {_m(lat['max'])} ms  lag≤{result.peak_lag}  "
            f"cpu {result.sut_cpu_s:.1f}s  disk {result.disk_write_bytes / 1e6:.1f} MB"
            f"{'' if result.caught_up else '  NOT CAUGHT UP'}"
        )
        split = result.extra.get("latency_split_ms")
        if split:
            before, after = split["to_routing"], split["routing_to_append"]
            cfg.log(f"            produce -> routed p50 {_m(before['p50'])} p99 {_m(before['p99'])} ms; "
                    f"routed -> appended p50 {_m(after['p50'])} p99 {_m(after['p99'])} ms")
        by_second = result.extra.get("latency_by_second")
        if by_second:
            worst = sorted(by_second, key=lambda w: -w["max"])[:3]
            cfg.log("            slowest seconds (from phase start): " + ", ".join(
                f"+{w['start_s']:.0f}s max {_m(w['max'])} p50 {_m(w['p50'])}" for w in worst)
                + f"; median second's max {_m(statistics.median(w['max'] for w in by_second))} ms")
        if not self.running.alive():
            raise RuntimeError("a process of the system under test exited")
        return result

    def _measure(
        self,
        name: str,
        kind: str,
        ids: Sequence[str],
        sender: PacedSend,
        records: list[DeliveryRecord],
        schedule: Schedule | None,
        offered: float | None,
    ) -> PhaseResult:
        prefix = f"{name}:"
        sent = sender.sent_ms
        latencies: list[float] = []
        # The same latency in two parts, split at the delivery's created_at (when the system
        # routed the event): produce -> routing (producer linger, broker, fetch wait, queue) and
        # routing -> append (the rest of the batch, the producer's linger, the broker's ack).
        to_routing: list[float] = []
        routing_to_append: list[float] = []
        sent_and_latency: list[tuple[float, float]] = []
        done: list[int] = []
        spike_lat: list[float] = []
        spike_done: list[int] = []
        spike_start = spike_end = None
        if kind == "spike" and schedule is not None:
            spike_start = sender.started_ms + schedule.segments[0].duration_s * 1000
            spike_end = spike_start + schedule.segments[1].duration_s * 1000
        first_done, last_done = math.inf, -math.inf
        for rec in records:
            if rec.reason not in IMMEDIATE_REASONS:
                continue
            eid = rec.event_ids[0]
            if not eid.startswith(prefix):
                continue
            seq = int(eid[len(prefix) :])
            lat = rec.append_ms - sent[seq]
            latencies.append(lat)
            to_routing.append(rec.created_ms - sent[seq])
            routing_to_append.append(rec.append_ms - rec.created_ms)
            sent_and_latency.append((sent[seq], lat))
            done.append(rec.append_ms)
            first_done, last_done = min(first_done, rec.append_ms), max(last_done, rec.append_ms)
            if spike_start is not None and spike_start <= sent[seq] < spike_end:
                spike_lat.append(lat)
                spike_done.append(rec.append_ms)
        events = len(ids)
        rate = sustained_rate(done, events)
        dels = math.nan
        if len(done) >= 10:
            ordered = sorted(done)
            t10, t90 = ordered[len(ordered) // 10], ordered[len(ordered) * 9 // 10]
            in_window = sum(1 for r in records if t10 <= r.append_ms <= t90)
            dels = in_window / ((t90 - t10) / 1000) if t90 > t10 else math.nan
        duration = (last_done - sender.started_ms) / 1000 if math.isfinite(last_done) else math.nan
        result = PhaseResult(
            name=name,
            kind=kind,
            events=events,
            offered_rate=offered,
            duration_s=round(duration, 3),
            events_per_s=rate,
            deliveries_per_s=dels,
            deliveries=len(records),
            latency_ms=latency_summary(latencies),
            sut_cpu_s=0,
            broker_cpu_s=0,
            machine_cpu_s=0,
            bench_cpu_s=0,
            peak_lag=0,
            caught_up=True,
            rss_mb=[],
            sender_late_s=0,
        )
        if kind in ("max", "max_repeat", "profile") and math.isfinite(last_done):
            result.extra["overall_events_per_s"] = events / max(1e-3, (last_done - sender.started_ms) / 1000)
            result.extra["produce_s"] = (sender.finished_ms - sender.started_ms) / 1000
        if kind in ("rate", "spike"):
            # Wall-clock start: lets a slow second be matched with the worker's log.
            result.extra["started_at_ms"] = sender.started_ms
            result.extra["latency_by_second"] = latency_by_window(sent_and_latency, sender.started_ms)
            result.extra["latency_split_ms"] = {"to_routing": latency_summary(to_routing),
                                                "routing_to_append": latency_summary(routing_to_append)}
        if spike_start is not None and schedule is not None:
            result.extra.update(
                {
                    "base_rate": schedule.segments[0].rate,
                    "spike_rate": schedule.segments[1].rate,
                    "spike_s": schedule.segments[1].duration_s,
                    "drain_s": round((max(spike_done) - spike_end) / 1000, 3) if spike_done else math.nan,
                    "spike_latency_ms": latency_summary(spike_lat),
                }
            )
        return result

    def _finish(self) -> None:
        """Wait for due digests, then count what came out in total."""
        rs = RouterSettings.from_env(self.cfg.router_env)
        time.sleep(rs.digest_window_ms / 1000 + 2.5)
        kafka_io.wait_quiet(self.probe, list(self.topics.all_deliveries().values()), quiet_s=1.5,
                            timeout_s=60)
        self._all_records.extend(self.reader.read_new())
        expected = self.workload.expected_max
        late = 0
        for _ in range(3):  # something missing: late (still in a hold) or lost? wait and look again
            delivered = {e for r in self._all_records for e in r.event_ids if e.startswith("max:")}
            if not expected - delivered:
                break
            time.sleep(5)
            more = self.reader.read_new()
            late += len(more)
            self._all_records.extend(more)
        ids: set[str] = set()
        event_ids: set[str] = set()
        kinds: dict[str, int] = {}
        max_delivered: set[str] = set()
        for rec in self._all_records:
            ids.add(rec.delivery_id)
            event_ids.update(rec.event_ids)
            kinds[rec.kind.lower()] = kinds.get(rec.kind.lower(), 0) + 1
            for eid in rec.event_ids:
                if eid.startswith("max:"):
                    max_delivered.add(eid)
        self.result.totals = {
            "records_after_extra_wait": late,
            "delivery_records": len(self._all_records),
            "distinct_delivery_ids": len(ids),
            "duplicate_delivery_records": len(self._all_records) - len(ids),
            "distinct_event_ids_delivered": len(event_ids),
            "by_kind": kinds,
            "max_phase_expected_event_ids": len(expected),
            "max_phase_delivered_event_ids": len(max_delivered & expected),
            "max_phase_unexpected_event_ids": len(max_delivered - expected),
            "max_phase_complete": round(len(max_delivered & expected) / len(expected), 5)
            if expected
            else math.nan,
            "max_phase_missing_sample": sorted(expected - max_delivered)[:20],
            "rss_mb_end": self.running.rss_mb() if self.running else [],
        }
        if self.responder is not None:
            self.result.totals["receipts_sent"] = self.responder.stop()
            self.responder = None
        if self.system.args == ("worker",):  # the notipipe worker: what it made of the receipts
            self.result.totals["worker_fallback_counters"] = self._fallback_counters()
        t = self.result.totals
        self.cfg.log(
            f"   totals: {t['delivery_records']} delivery records, {t['distinct_delivery_ids']} distinct, "
            f"max phase complete {t['max_phase_complete']:.4f} ({t['max_phase_delivered_event_ids']}/"
            f"{t['max_phase_expected_event_ids']} event ids, "
            f"{t['max_phase_unexpected_event_ids']} unexpected)"
        )
        if "receipts_sent" in t or t.get("worker_fallback_counters"):
            counters = t.get("worker_fallback_counters", {})
            self.cfg.log(f"   receipts sent: {t.get('receipts_sent', {})}; the worker's: "
                         + (", ".join(f"{k}={v}" for k, v in sorted(counters.items())) or "-"))

    def _fallback_counters(self) -> dict[str, int]:
        counters: dict[str, int] = {}
        for i in range(self.workers):
            with contextlib.suppress(OSError, ValueError):  # a worker that does not answer: left out
                url = f"http://127.0.0.1:{self.base_port + i}/counters"
                with urllib.request.urlopen(url, timeout=10) as response:
                    for name, value in json.load(response).items():
                        if name.startswith(("fallback.", "receipt.")):
                            counters[name] = counters.get(name, 0) + value
        return counters

    def _teardown(self) -> None:
        if self.responder is not None:
            self.responder.stop()
        if self.running is not None:
            self.running.stop()
        for closer in ("reader", "probe"):
            obj = getattr(self, closer, None)
            if obj is not None:
                with contextlib.suppress(Exception):
                    obj.close()
        delete_topics_containing(self.stack, self.prefix.rstrip("."))
        shutil.rmtree(self.data_dir, ignore_errors=True)


def run_core(cfg: BenchConfig, workload: Workload) -> dict:
    """The rules in-process on the first events of the burst (see core.py)."""
    n = min(len(workload.max_keys), 10_000 if cfg.quick else 30_000)
    prefs = {p.user_id.encode(): p.to_avro() for p in workload.prefs}
    core = measure_core(
        workload._codec,
        subject_for("bench-build.notifications.deliveries.email"),
        workload.max_keys[:n],
        workload.max_values[:n],
        prefs,
        RouterSettings.from_env(cfg.router_env),
    )
    for stage in core["stages"]:
        cfg.log(
            f"   core: {stage['stage']:<52} {stage['events_per_s']:>9,.0f} ev/s  "
            f"{stage['us_per_event']:7.1f} us/event"
        )
    return core


def run_all(cfg: BenchConfig, stack: StackSettings) -> tuple[list[SystemRun], Workload, str, dict]:
    run_id = uuid.uuid4().hex[:6]
    cfg.log(f"building the workload: {cfg.workload.users} users, {cfg.events} events in the max burst")
    t0 = time.monotonic()
    workload = Workload(cfg, _codec_factory(stack))
    cfg.log(
        f"   built in {time.monotonic() - t0:.1f}s; the rules deliver {len(workload.expected_max)} of "
        f"{len(set(workload.max_ids))} distinct max-phase events"
    )
    core = run_core(cfg, workload)
    runs: list[SystemRun] = []
    port = 6300
    for name, workers in cfg.runs:
        bench = SystemBench(cfg, stack, SYSTEMS[name], workers, workload, run_id, port)
        runs.append(bench.run())
        port += 10
    return runs, workload, run_id, core


def _r(value: float | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:,.0f}"


def _m(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.0f}"


def to_jsonable(obj):  # noqa: ANN001, ANN201
    if dataclasses.is_dataclass(obj):
        return {k: to_jsonable(v) for k, v in dataclasses.asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dump_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(to_jsonable(data), indent=1))
