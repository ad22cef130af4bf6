"""The worker's tables on real Faust and RocksDB objects, for unit tests (imported by module name)."""

from __future__ import annotations

import weakref
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import faust
from faust.streams import _current_event
from faust.types.tuples import ConsumerMessage

from streams.faust_ext.changelog_table import ProducerChangelogTable
from streams.faust_ext.rocksdb_memory import RocksDBMemory
from streams.worker.app import ROCKSDB_OPTIONS

EVENTS = "notifications.events"


class BrokerAcks:
    """What the table needs of DeliveryProducer (``send_raw``, ``after_flush``), with the broker's
    part played here: records are taken, and acked with their offsets on ``flush``, after which
    the after-flush hooks run, as after the worker's pre-commit flush."""

    def __init__(self, first_offsets: dict[int, int] | None = None) -> None:
        self.records: list[tuple[str, int, bytes, bytes | None]] = []
        self._next_offset: defaultdict[int, int] = defaultdict(int, first_offsets or {})
        self._unacked: list[tuple[int, Callable[[int, int], None]]] = []
        self._hooks: list[Callable[[], None]] = []

    def send_raw(self, topic: str, partition: int, key: bytes, value: bytes | None,
                 on_written: Callable[[int, int], None]) -> None:
        self.records.append((topic, partition, key, value))
        self._unacked.append((partition, on_written))

    def after_flush(self, hook: Callable[[], None]) -> None:
        self._hooks.append(hook)

    def flush(self) -> None:
        for partition, on_written in self._unacked:
            on_written(partition, self._next_offset[partition])
            self._next_offset[partition] += 1
        self._unacked.clear()
        for hook in self._hooks:
            hook()


def users_table(datadir: Path, broker: BrokerAcks | None = None,
                memory: RocksDBMemory | None = None) -> ProducerChangelogTable:
    """The worker's users table (RocksDB in ``datadir``), in a Faust app configured as the
    worker's, not started."""
    app = faust.App("changelog-table-test", broker="kafka://127.0.0.1:1", store="rocksdb://",
                    datadir=str(datadir), key_serializer="raw", value_serializer="raw")
    table = app.tables.add(ProducerChangelogTable(app, name="users", partitions=2,
                                                  key_type=bytes, value_type=bytes,
                                                  options=dict(ROCKSDB_OPTIONS)))
    if memory is not None:
        table.use_memory(memory)
    if broker is not None:
        table.use_producer(broker)  # type: ignore[arg-type]
    return table


@contextmanager
def processing_event_of(app: faust.App, partition: int) -> Iterator[None]:
    """Inside a stream's iteration of an event of ``partition`` (where Faust allows table writes)."""
    message = ConsumerMessage(topic=EVENTS, partition=partition, offset=0, timestamp=1.0,
                              timestamp_type=0, headers=[], key=b"u", value=b"v", checksum=None)
    event = faust.Event(app, b"u", b"v", [], message)
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)
