"""bench/sizing.py: the offline figures docs/capacity.md sizes storage and sinks with."""

import orjson
from aiokafka import codec as kafka_codec
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from bench.sizing import (
    BATCH_HEADER,
    CODECS,
    DAY_MS,
    _records_section,
    batch_bytes,
    bytes_per_record,
    simulate_day,
)
from bench.workload import WorkloadSpec

RECORDS = [(f"u{i:07d}".encode(), b'{"v":2,"user_id":"u%07d","seen":" 1,2,3"}' % i) for i in range(50)]
DECODERS = {
    "lz4": kafka_codec.lz4_decode,
    "snappy": kafka_codec.snappy_decode,
    "zstd": kafka_codec.zstd_decode,
    "gzip": kafka_codec.gzip_decode,
}


def test_an_uncompressed_batch_is_the_size_kafka_clients_build():
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False,
                                        producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                        batch_size=1 << 30)
    for offset, (key, value) in enumerate(RECORDS[:7]):
        builder.append(offset, 1_796_000_000_000 + offset, key, value, [])
    built = bytes(builder.build())
    assert batch_bytes(RECORDS[:7], "none") == len(built)
    batch = DefaultRecordBatch(built)
    assert [(r.key, r.value) for r in batch] == RECORDS[:7]


def test_each_codec_writes_what_a_kafka_client_decompresses():
    section = _records_section(RECORDS)
    for name, decode in DECODERS.items():
        compressed = CODECS[name](section)
        assert decode(compressed) == section, name
        assert batch_bytes(RECORDS, name) == BATCH_HEADER + len(compressed)


def test_larger_batches_share_the_header_and_compress_better():
    one = bytes_per_record(RECORDS, "lz4", 1)
    ten = bytes_per_record(RECORDS, "lz4", 10)
    fifty = bytes_per_record(RECORDS, "lz4", 50)
    assert one > ten > fifty
    assert bytes_per_record(RECORDS, "none", 1) - bytes_per_record(RECORDS, "none", 50) > BATCH_HEADER * 0.9


def test_a_simulated_day_records_what_a_worker_would_write():
    spec = WorkloadSpec(users=40, seed=3)
    day = simulate_day(spec, events_per_user=5)
    assert len(day.events) == 200
    assert len(day.preferences) == len(day.preferences_table) == 40
    assert sum(day.delivered.values()) == len(day.deliveries) > 0
    assert all(value[0] == 0 for _, value in day.events + day.deliveries)  # Avro wire format
    # Every event but the duplicates changes its user's state; flushes write it again.
    assert len(day.changelog) >= 200 * (1 - 0.1)
    state = orjson.loads(day.changelog[-1][1])
    assert state["user_id"] == day.changelog[-1][0].decode()
    assert 0 <= state["p"] < 256
    first_seen = state["seen"].split(" ")[1].split(",")
    assert len(first_seen[0]) == 36  # event ids are UUIDs, as the SDK makes them
    assert len(first_seen[2]) == 10  # offsets of a topic that has run for months


def test_a_burst_of_digest_categories_folds_into_digests_where_a_spread_day_does_not():
    spec = WorkloadSpec(users=40, digest_share=1.0, seed=3)
    spread = simulate_day(spec, events_per_user=10, session_ms=DAY_MS)
    burst = simulate_day(spec, events_per_user=10, session_ms=60_000)
    digests = {name: sum(n for (_, kind), n in day.delivered.items() if kind == "DIGEST")
               for name, day in (("spread", spread), ("burst", burst))}
    assert digests["burst"] > digests["spread"]
    assert len(burst.deliveries) < len(spread.deliveries)
