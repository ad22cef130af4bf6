"""The framework internals the extensions rely on, pinned: versions, names and source.

Every private name of faust-streaming, aiokafka or mode that the project uses is listed here, with
the extension that uses it and why. `verify_installed` runs when a worker starts (a different
Faust fails at once, with the list, rather than during a rebalance); the guard test
(tests/unit/test_faust_internals.py) also compares each function's source with the hash it was
written against, so an upgrade that changes any of them fails loudly, naming it.

To upgrade: change a pin in pyproject.toml and here, run the guard test, read each changed
function against the extension that relies on it, then update its hash.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

PINNED_VERSIONS = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0", "mode-streaming": "0.7.1"}


class IncompatibleFramework(RuntimeError):
    """The installed faust-streaming / aiokafka / mode is not the one the extensions were
    written against."""


@dataclass(frozen=True)
class Internal:
    module: str
    qualname: str  # a function, method or attribute of the module
    used_by: str  # the extension module, under streams/faust_ext/
    why: str
    source_sha: str | None = None  # sha256[:16] of inspect.getsource, for functions
    mentions: tuple[str, ...] = ()  # names the source must still contain (attributes it sets)

    @property
    def name(self) -> str:
        return f"{self.module}.{self.qualname}"

    def resolve(self) -> Any:
        obj: Any = importlib.import_module(self.module)
        for part in self.qualname.split("."):
            obj = getattr(obj, part)
        return obj


DRIVER = "faust.transport.drivers.aiokafka"
CONSUMER = "faust.transport.consumer"
ROCKSDB = "faust.stores.rocksdb"

INTERNALS = (
    Internal(DRIVER, "Consumer._drain_messages", "consumer.py",
             "overridden: records handed to streams without four tasks each, held back during a "
             "rebalance; mirrors this method's offset, gap and commit handling",
             "44a2500309e83c63"),
    Internal(DRIVER, "Consumer._new_consumer_thread", "consumer.py",
             "overridden: a consumer thread that sets aiokafka's fetch sizes", "0870ec53dea75083"),
    Internal(DRIVER, "AIOKafkaConsumerThread._create_worker_consumer", "consumer.py",
             "overridden: the fetch sizes are set on the consumer it builds", "c2701bfc3e6f6cad"),
    Internal("aiokafka.consumer.consumer", "AIOKafkaConsumer.__init__", "consumer.py",
             "sets _fetch_min_bytes/_fetch_max_wait_ms, read by start() when it builds the fetcher",
             "01506f316191f7c9", ("self._fetch_min_bytes", "self._fetch_max_wait_ms")),
    Internal("aiokafka.consumer.consumer", "AIOKafkaConsumer.start", "consumer.py",
             "builds the fetcher from _fetch_min_bytes/_fetch_max_wait_ms", "2f1ba70443327538",
             ("self._fetch_min_bytes", "self._fetch_max_wait_ms")),
    Internal(CONSUMER, "Consumer._add_gap", "consumer.py",
             "called: offsets missing between records count as acked", "4df2573ded7c1c2c"),
    Internal(CONSUMER, "Consumer.__init__", "consumer.py",
             "the read offsets and commit-every counters the lean delivery keeps up to date",
             "302410d59e6972d1", ("self._read_offset", "self._commit_every")),
    Internal(CONSUMER, "Consumer._n_acked", "consumer.py",
             "the count of acks since the last commit, which commit-every compares"),
    Internal("mode.services", "Service.__init__", "consumer.py",
             "_stopped: the event the delivery loop watches to end", "ab4d12a25b93044a",
             ("self._stopped",)),
    Internal(CONSUMER, "Consumer.perform_seek", "consumer.py",
             "called after a rebalance that held records back: read them again from the "
             "committed offsets", "0e8c130ff4b0afd8"),
    Internal(DRIVER, "Consumer.seek_to_committed", "partition_seek.py",
             "wrapped: partitions never committed are sought to their beginning",
             "f1d483b861b0328b"),
    Internal("aiokafka.consumer.consumer", "AIOKafkaConsumer.seek_to_committed", "partition_seek.py",
             "the gap being worked around: it seeks only partitions committed above 0",
             "f6cd85c8b70a4ccf"),
    Internal("faust.streams", "Stream._py_aiter", "queued_events.py",
             "the per-event work of Faust's stream iterator that take_queued mirrors: generation "
             "and flow skips, message tracking", "3a48ee257a65435b"),
    Internal(CONSUMER, "Consumer.track_message", "queued_events.py",
             "called: a taken event is unacked until the router acks it", "217d7f1399a4cd8e"),
    Internal("faust.streams", "_current_event", "current_event.py",
             "the context variable behind faust.current_event(): table writes go to its partition"),
    Internal(CONSUMER, "Consumer._commit_offsets", "commit_hook.py",
             "awaits app.producer.flush() before committing: the worker's producer is flushed "
             "there, so no offset passes an unacknowledged delivery", "1a69799041188441",
             ("await self.app.producer.flush()",)),
    Internal(DRIVER, "Producer._settings_extra", "producer.py",
             "overridden: acks=all and idempotence outside transactions too", "a4c7bc41b6382223"),
    Internal("faust.tables.base", "Collection.send_changelog", "changelog_table.py",
             "overridden: the users changelog goes out through librdkafka", "3dd3884e1b5fc0e1"),
    Internal(ROCKSDB, "Store._db_for_partition", "changelog_table.py, rocksdb_memory.py",
             "called: raw reads and writes of a partition's RocksDB", "cb7e67d5f9efc4bc"),
    Internal(ROCKSDB, "Store.set_persisted_offset", "changelog_table.py",
             "called once per commit: where recovery starts reading the changelog",
             "b4c811926678346e"),
    Internal("faust.tables.base", "Collection._new_store", "rocksdb_memory.py",
             "overridden: stores open with the shared memory budget", "914a2bda605d38f5"),
    Internal(ROCKSDB, "RocksDBOptions.__init__", "rocksdb_memory.py",
             "copied by the shared-memory options", "68ec2240dbf40cf8"),
    Internal(ROCKSDB, "RocksDBOptions.open", "rocksdb_memory.py",
             "extended: databases written without a write-ahead log", "ff87e92d69e2f487"),
    Internal(ROCKSDB, "RocksDBOptions.as_options", "rocksdb_memory.py",
             "replaced: the shared cache and write buffer manager", "d2a1bea17736d2eb"),
    Internal(CONSUMER, "Consumer.wait_empty", "bounded_stop.py",
             "mirrored with a deadline while the app stops; Faust's loops until every taken event "
             "is acked", "e4662fe24f094819", ("self._unacked_messages",)),
    Internal(CONSUMER, "Consumer._wait_for_ack", "bounded_stop.py",
             "called: waits up to a second for an ack (and swallows a cancellation)",
             "d9c9337d4af88e54"),
    Internal(CONSUMER, "Consumer._clean_unacked_messages", "bounded_stop.py",
             "called: forgets acked messages", "11be2587e71c9162"),
    Internal(CONSUMER, "Consumer.commit_and_end_transactions", "bounded_stop.py",
             "called when the bound is reached: commits the safe offsets, as wait_empty ends",
             "892377824b11a2ee"),
    Internal("faust.app.base", "App._stop_consumer", "bounded_stop.py",
             "where a stopping worker waits for its agents (wait_empty), before they are stopped",
             "55854a5de12c3f52", ("_consumer_wait_empty",)),
    Internal("faust.serializers.schemas", "Schema.compile", "raw_schema.py",
             "overridden: raw records become events without the serializer registry",
             "d46eec5ce3195b2c"),
    Internal("faust.app.base", "App.create_event", "raw_schema.py",
             "what RawSchema's decoder does, minus a settings lookup per record", "15fea3d1e95e6625"),
)


def source_sha(obj: Any) -> str:
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]


def version_problems() -> list[str]:
    problems = []
    for package, pinned in PINNED_VERSIONS.items():
        try:
            installed = version(package)
        except PackageNotFoundError:
            installed = "not installed"
        if installed != pinned:
            problems.append(f"{package} {installed} is installed; the extensions in streams/faust_ext/ "
                            f"were written against {pinned}")
    return problems


def missing_names() -> list[str]:
    missing = []
    for internal in INTERNALS:
        try:
            internal.resolve()
        except (ImportError, AttributeError):
            missing.append(f"{internal.name} (used by streams/faust_ext/{internal.used_by})")
    return missing


def verify_installed() -> None:
    """Fail at start-up, with the reason, when the installed framework is not the pinned one."""
    problems = version_problems() + [f"missing: {name}" for name in missing_names()]
    if problems:
        raise IncompatibleFramework(
            "; ".join(problems) + ". Install the versions pinned in pyproject.toml "
            "(pip install -r requirements.lock), or review streams/faust_ext/internals.py.")
