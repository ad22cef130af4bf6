"""The shared RocksDB budget, on real RocksDB databases (rocksdict) in a temporary directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from faust.stores.rocksdb import RocksDBOptions
from worker_tables import BrokerAcks, users_table

from streams.faust_ext.rocksdb_memory import RocksDBMemory
from streams.worker.metrics import prometheus_gauges

MB = 1024**2
SOFT_BOUND = 1.5  # seen up to 1.13× in 20 runs; four separate caches would hold 4× and more


def test_databases_share_one_bounded_cache_for_blocks_and_memtables(tmp_path: Path) -> None:
    memory = RocksDBMemory(8 * MB)
    options = memory.options_for(RocksDBOptions(write_buffer_size=2 * MB, use_rocksdict=True))
    dbs = [options.open(tmp_path / f"db{i}") for i in range(4)]
    values = {}
    for n in range(40_000):  # 20 MB of values, 2.5× the budget
        key, value = b"user-%d" % n, os.urandom(500)
        dbs[n % 4][key] = value
        if n % 97 == 0:
            values[key] = (n % 4, value)
        if n == 2_000:  # 1 MB: below the memtables' share, nothing flushed yet
            usage = memory.usage()
            assert 0 < usage["memtables"] <= usage["cache"], usage  # charged to the cache
    # Memtables count in the cache's bound until they are flushed. How far the flushes lag
    # behind the writes depends on the machine's load, not on the options: wait for them.
    for db in dbs:
        db.flush()
    usage = memory.usage()
    assert usage["cache"] <= 8 * MB * SOFT_BOUND, usage
    for n in range(0, 40_000, 3):  # reads fill the block cache
        dbs[n % 4][b"user-%d" % n]
    usage = memory.usage()
    assert usage["budget"] == 8 * MB
    assert 4 * MB < usage["cache"] <= 8 * MB * SOFT_BOUND, usage  # filled, within one budget
    for key, (db, value) in values.items():
        assert dbs[db][key] == value
    for db in dbs:
        db.close()


def test_the_budget_needs_the_rocksdict_driver() -> None:
    with pytest.raises(RuntimeError, match="rocksdict"):
        RocksDBMemory(16 * MB).options_for(RocksDBOptions(use_rocksdict=False))


def test_gauges_render_for_prometheus() -> None:
    text = prometheus_gauges({"rocksdb_cache_bytes": 1234567.0, "state_cache_users": 3})
    assert text.splitlines() == [
        "# TYPE notipipe_rocksdb_cache_bytes gauge", "notipipe_rocksdb_cache_bytes 1234567",
        "# TYPE notipipe_state_cache_users gauge", "notipipe_state_cache_users 3"]


_CRASHING_WRITER = """
import os, sys
from faust.stores.rocksdb import RocksDBOptions
from streams.faust_ext.rocksdb_memory import RocksDBMemory
db = RocksDBMemory(8 << 20).options_for(RocksDBOptions(use_rocksdict=True)).open(sys.argv[1])
db[b"flushed"] = b"1"
db[b"offset"] = b"1"
db.flush()
db[b"unflushed"] = b"2"
db[b"offset"] = b"2"
if sys.argv[2] == "drop":  # what Faust does on revocation and stop: no close, the last ref goes
    del db
os._exit(0)  # as a crash: nothing still open is closed or destroyed
"""


def test_a_crash_keeps_a_prefix_of_the_writes_up_to_the_last_memtable_flush(
        tmp_path: Path) -> None:
    """Writes skip the write-ahead log (the changelog is the truth): a crashed worker's store comes
    back as it was at the last memtable flush, the offset stored with the values included, so
    Faust's recovery replays the changelog from there."""
    db = _reopen_after_writer(tmp_path / "db", "crash")
    try:
        assert db.get(b"flushed") == b"1"
        assert db.get(b"offset") == b"1"
        assert db.get(b"unflushed") is None  # it would have survived in the WAL
    finally:
        db.close()


def test_a_database_dropped_without_close_keeps_every_write(tmp_path: Path) -> None:
    """Faust drops a revoked partition's database instead of closing it; RocksDB then flushes the
    memtables itself, so a clean handover or stop needs no changelog replay."""
    db = _reopen_after_writer(tmp_path / "db", "drop")
    try:
        assert db.get(b"unflushed") == b"2"
        assert db.get(b"offset") == b"2"
    finally:
        db.close()


def _reopen_after_writer(path: Path, how: str) -> Any:
    subprocess.run([sys.executable, "-c", _CRASHING_WRITER, str(path), how], check=True,
                   cwd=Path(__file__).resolve().parents[2])
    return RocksDBMemory(8 * MB).options_for(RocksDBOptions(use_rocksdict=True)).open(path)


def test_a_tables_databases_open_inside_the_shared_budget(tmp_path: Path) -> None:
    """The worker's tables (Faust's RocksDB store, one database per partition) charge their
    memtables to the worker's one budget instead of each having its own."""
    memory = RocksDBMemory(8 * MB)
    table = users_table(tmp_path, BrokerAcks(), memory)
    for n in range(2_000):
        table.set_raw(n % 2, b"user-%d" % n, os.urandom(500))
    usage = memory.usage()
    assert usage["memtables"] > 500_000, usage  # both partitions' writes, in the shared budget
    assert table.get_raw(1, b"user-1999") is not None


def test_the_budget_is_set_before_a_tables_store_opens(tmp_path: Path) -> None:
    table = users_table(tmp_path, BrokerAcks())
    table.set_raw(0, b"user", b"{}")  # the store is open now
    with pytest.raises(RuntimeError, match="table users: set the memory budget before"):
        table.use_memory(RocksDBMemory(8 * MB))
