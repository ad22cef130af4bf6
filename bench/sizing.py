"""What the brokers store and carry per event, offline: record sizes, compression, deliveries per
event. `docs/capacity.md` sizes storage, traffic and sinks with these figures.

The benchmark's workload (`workload.py`) goes through the pure router over a simulated day: each
user's events at random times (spread over 24 h, or inside one session), due holds flushed when
they fall due, the production windows (`RouterSettings` defaults). What a worker would write is
encoded as it writes it: events and deliveries in Avro with the 5-byte wire header, the users
changelog as the state's JSON. Event ids are UUIDs, as the SDK makes them, and positions carry
10-digit offsets, as on a topic that has run for months: both are in every state's seen ids.

Records are then laid out as Kafka v2 record batches (aiokafka's builder: the format the broker
stores), shuffled so a batch holds many users, and the records section compressed with each codec
at librdkafka's default level (lz4 fast mode, zstd 3, gzip 6, raw snappy), as the producer does.

    python -m bench.sizing          # ~3 CPU-minutes; --help for the options
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cramjam
import orjson
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from bench.workload import EventStream, WorkloadSpec, preferences_for
from streams.contracts.avro_codec import AvroCodec
from streams.contracts.delivery_avro import DeliveryEncoder
from streams.contracts.schemas import load_schema, subject_for
from streams.contracts.topics import Topics
from streams.core.model import Delivery, Event, Preferences
from streams.core.routing.router import flush_due, next_due_ms, route
from streams.core.routing.state import UserState
from streams.core.settings import RouterSettings

DAY_MS = 86_400_000
DAY0_MS = 1_796_000_000_000  # a fixed day: the simulation does not depend on when it runs
PARTITIONS = 256
OFFSET_BASE = 1_000_000_000  # offsets of a topic that has run for months
BATCH_HEADER = 61  # bytes of a v2 record batch before its records

Record = tuple[bytes, bytes]  # key, value


def _lz4(data: bytes) -> bytes:
    # Kafka's lz4 is the frame format with independent blocks (KIP-57), no content checksum.
    compressor = cramjam.lz4.Compressor(level=0, content_checksum=False, block_linked=False)
    compressor.compress(data)
    return bytes(compressor.finish())


CODECS: dict[str, Callable[[bytes], bytes]] = {
    "none": lambda data: data,
    "lz4": _lz4,
    "snappy": lambda data: bytes(cramjam.snappy.compress_raw(data)),
    "zstd": lambda data: bytes(cramjam.zstd.compress(data, level=3)),
    "gzip": lambda data: bytes(cramjam.gzip.compress(data, level=6)),
}


class LocalRegistry:
    """Schema ids handed out in-process: the sizes need ids, not a registry."""

    def __init__(self) -> None:
        self._texts: list[str] = []

    def register(self, subject: str, text: str) -> int:
        if text not in self._texts:
            self._texts.append(text)
        return self._texts.index(text) + 1

    def get_schema(self, schema_id: int) -> str:
        return self._texts[schema_id - 1]


@dataclass
class Day:
    """What one simulated day of the workload made a worker write."""

    events: list[Record] = field(default_factory=list)  # as produced, duplicates included
    deliveries: list[Record] = field(default_factory=list)
    changelog: list[Record] = field(default_factory=list)  # one per state write
    preferences: list[Record] = field(default_factory=list)  # the topic's Avro snapshots
    preferences_table: list[Record] = field(default_factory=list)  # the worker's table: JSON
    delivered: Counter = field(default_factory=Counter)  # (channel key, kind) -> deliveries
    end_states: list[int] = field(default_factory=list)  # bytes of each user's state at day's end


def simulate_day(spec: WorkloadSpec, events_per_user: int = 10, session_ms: int = DAY_MS,
                 settings: RouterSettings | None = None) -> Day:
    """Route ``spec.users * events_per_user`` events; each user's fall inside one window of
    ``session_ms`` placed at random in the day (``DAY_MS``: spread over the whole day)."""
    settings = settings or RouterSettings()
    topics = Topics()
    codec = AvroCodec(LocalRegistry())
    events_subject = subject_for(topics.events)
    codec.add_subject(events_subject, load_schema("notification_event"))
    codec.add_subject(subject_for(topics.preferences), load_schema("user_preferences"))
    for topic in topics.all_deliveries().values():
        codec.add_subject(subject_for(topic), load_schema("delivery"))
    encoder = DeliveryEncoder(codec, {ch: subject_for(t) for ch, t in topics.all_deliveries().items()})
    rng = random.Random(spec.seed + 2)
    day = Day()

    prefs = {p.user_id: p for p in preferences_for(spec, now_s=DAY0_MS / 1000)}
    for p in prefs.values():
        record = p.to_avro()
        day.preferences.append((p.user_id.encode(), codec.encode(subject_for(topics.preferences), record)))
        day.preferences_table.append((p.user_id.encode(), orjson.dumps(record)))
    by_value: dict[bytes, Event] = {}

    def encode(event: Event) -> bytes:
        event.event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        value = codec.encode(events_subject, event.to_avro())
        by_value[value] = event
        return value

    keys, values, _ = EventStream(spec).phase("day", spec.users * events_per_user, encode, DAY0_MS)
    day.events = list(zip(keys, values, strict=True))
    starts: dict[bytes, int] = {}
    timeline: dict[bytes, list[tuple[int, int]]] = {}
    for i, key in enumerate(keys):
        start = starts.setdefault(key, DAY0_MS + rng.randrange(DAY_MS - session_ms + 1))
        timeline.setdefault(key, []).append((start + rng.randrange(session_ms), i))

    for key, arrivals in timeline.items():
        _route_user(day, key, [(at, by_value[values[i]], i) for at, i in sorted(arrivals)],
                    prefs.get(key.decode()), settings, encoder)
    return day


def _route_user(day: Day, key: bytes, arrivals: Sequence[tuple[int, Event, int]],
                prefs: Preferences | None, settings: RouterSettings, encoder: DeliveryEncoder) -> None:
    """One user's day: each event routed at its time, holds flushed as they fall due, and every
    state write and delivery recorded as the worker would write it."""
    state = UserState()
    partition = zlib.crc32(key) % PARTITIONS

    def record(deliveries: Sequence[Delivery], changed: bool) -> None:
        for d in deliveries:
            day.deliveries.append((key, encoder.encode(d)))
            day.delivered[d.channel.key, d.kind.value] += 1
        if changed:
            day.changelog.append((key, _state_json(state, partition)))

    def flush_until(now_ms: int) -> None:
        while (due := next_due_ms(state)) is not None and due <= now_ms:
            flushed = flush_due(state, prefs, due, settings)
            record(flushed.deliveries, flushed.changed)

    for at_ms, event, i in arrivals:
        flush_until(at_ms)
        result = route(event, prefs, state, at_ms, (partition, OFFSET_BASE + i), settings)
        record(result.deliveries, result.changed)
    flush_until(DAY0_MS + 3 * DAY_MS)  # every hold out: quiet hours, throttle, digest windows
    day.end_states.append(len(_state_json(state, partition)))


def _state_json(state: UserState, partition: int) -> bytes:
    """The users table's value, as `streams/worker/user_store.py` writes it."""
    return orjson.dumps({**state.to_dict(), "p": partition})


def batch_bytes(records: Sequence[Record], codec: str) -> int:
    """Size of one v2 record batch holding ``records`` (1 ms apart), compressed with ``codec``."""
    return BATCH_HEADER + len(CODECS[codec](_records_section(records)))


def batches(records: Sequence[Record], size: int, seed: int = 7) -> list[list[Record]]:
    """The records shuffled (a partition's batch holds many users), in batches of ``size``."""
    mixed = list(records)
    random.Random(seed).shuffle(mixed)
    return [mixed[i:i + size] for i in range(0, len(mixed), size)]


def bytes_per_record(records: Sequence[Record], codec: str, size: int) -> float:
    chunks = batches(records, size)
    return sum(batch_bytes(chunk, codec) for chunk in chunks) / len(records)


def compress_us_per_record(records: Sequence[Record], codec: str, size: int = 100,
                           repeat: int = 3) -> float:
    """CPU time to compress the records sections, per record: the best of ``repeat`` passes."""
    sections = [_records_section(chunk) for chunk in batches(records, size)]
    compress = CODECS[codec]
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for section in sections:
            compress(section)
        best = min(best, time.process_time() - start)
    return 1e6 * best / len(records)


def _records_section(records: Sequence[Record]) -> bytes:
    """The records of a v2 batch, uncompressed: what a codec compresses (the header stays plain)."""
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False,
                                        producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                        batch_size=1 << 30)
    for offset, (key, value) in enumerate(records):
        builder.append(offset, DAY0_MS + offset, key, value, [])
    return bytes(builder.build())[BATCH_HEADER:]


def _mean(values: Sequence[int]) -> float:
    return statistics.fmean(values) if values else 0.0


def _report(day: Day, batch_sizes: Sequence[int]) -> None:
    sets = {"events": day.events, "deliveries": day.deliveries,
            "users changelog": day.changelog, "preferences": day.preferences,
            "preferences table": day.preferences_table}
    print("\nRecord values, bytes (Avro: with the 5-byte header)")
    print(f"{'records':<17} {'count':>9} {'mean':>7} {'p50':>6} {'p95':>6}")
    for name, records in sets.items():
        sizes = sorted(len(v) for _, v in records)
        print(f"{name:<17} {len(sizes):>9} {_mean(sizes):>7.0f} {sizes[len(sizes) // 2]:>6} "
              f"{sizes[int(len(sizes) * 0.95)]:>6}")
    sizes = sorted(day.end_states)
    print(f"{'state at day end':<17} {len(sizes):>9} {_mean(sizes):>7.0f} {sizes[len(sizes) // 2]:>6} "
          f"{sizes[int(len(sizes) * 0.95)]:>6}")
    print("\nOn the broker: bytes per record in v2 batches (key, value, record and batch overhead)")
    print(f"{'records':<17} {'batch':>6} " + " ".join(f"{c:>7}" for c in CODECS))
    for name, records in sets.items():
        for size in batch_sizes:
            row = " ".join(f"{bytes_per_record(records, c, size):>7.0f}" for c in CODECS)
            print(f"{name:<17} {size:>6} {row}")
    print("\nCPU to compress, µs per record (batches of 100, this process, best of 3)")
    print(f"{'records':<17} " + " ".join(f"{c:>7}" for c in CODECS if c != "none"))
    for name, records in sets.items():
        row = " ".join(f"{compress_us_per_record(records, c):>7.2f}" for c in CODECS if c != "none")
        print(f"{name:<17} {row}")


def _delivery_line(label: str, day: Day) -> str:
    events = len(day.events)
    per_channel = Counter()
    for (channel, _kind), n in day.delivered.items():
        per_channel[channel] += n
    digests = sum(n for (_, kind), n in day.delivered.items() if kind == "DIGEST")
    channels = " ".join(f"{per_channel[c] / events:>6.3f}" for c in ("email", "sms", "push", "in_app"))
    return (f"{label:<28} {sum(per_channel.values()) / events:>6.3f} {channels} "
            f"{digests / events:>7.3f} {len(day.changelog) / events:>9.3f} "
            f"{_mean([len(v) for _, v in day.changelog]):>7.0f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sizing", description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000, help="users simulated (default 10000)")
    parser.add_argument("--events-per-user", type=int, default=10, help="events per user per day")
    parser.add_argument("--digest-shares", default="0,0.2,0.4,0.6,0.8",
                        help="share of events in digest categories, one day each (default 0,0.2,0.4,0.6,0.8)")
    parser.add_argument("--session-minutes", type=int, default=60,
                        help="the bursty pattern: each user's events inside one session this long")
    parser.add_argument("--dedupe-hours", type=float, default=24,
                        help="how long event ids are remembered (NOTIPIPE_DEDUPE_RETENTION_S; default 24)")
    parser.add_argument("--batches", default="1,2,5,10,20,100,1000",
                        help="records per batch (default 1,2,5,10,20,100,1000)")
    args = parser.parse_args(argv)
    shares = [float(s) for s in args.digest_shares.split(",") if s.strip()]
    sizes = [int(s) for s in args.batches.split(",") if s.strip()]

    settings = RouterSettings(dedupe_retention_ms=int(args.dedupe_hours * 3_600_000))
    print(f"{args.users} users x {args.events_per_user} events, production windows (digest 15 min, "
          f"throttle 10 per channel per hour), dedupe {args.dedupe_hours:g} h")
    print(f"\n{'pattern, digest share':<28} {'deliv':>6} {'email':>6} {'sms':>6} {'push':>6} "
          f"{'in_app':>6} {'digests':>7} {'chlog/ev':>9} {'chlog B':>7}   (per event)")
    baseline: Day | None = None
    for pattern, session_ms in (("spread over 24 h", DAY_MS),
                                (f"in {args.session_minutes} min", args.session_minutes * 60_000)):
        for share in shares:
            spec = WorkloadSpec(users=args.users, digest_share=share)
            day = simulate_day(spec, args.events_per_user, session_ms, settings)
            print(_delivery_line(f"{pattern}, {share:.0%}", day), flush=True)
            if session_ms == DAY_MS and abs(share - 0.4) < 1e-9:
                baseline = day
    if baseline is None:
        baseline = simulate_day(WorkloadSpec(users=args.users), args.events_per_user, DAY_MS, settings)
    print("\nSizes and compression: the workload's own mix (40 % digest categories), spread over 24 h")
    _report(baseline, sizes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
