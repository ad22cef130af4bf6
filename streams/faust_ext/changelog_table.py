"""A Faust table whose changelog records go out through the worker's librdkafka producer.

Replaces: ``Collection.send_changelog`` (the table's changelog send) and writes values straight
into the partition's store through ``Store._db_for_partition``.

Faust sends each table change through its aiokafka producer: a future, a callback and a RocksDB
write of the "persisted offset" per change. For the users table, changed once per event, that was
the largest single cost in the worker's profile. This table sends the same record (same topic,
partition, key and value) through a sender that Faust's pre-commit flush waits for
(``commit_hook.py``), and writes the persisted offset once per partition per commit instead of
per change, once the flush has the records acknowledged. Recovery is unchanged: Faust reads the
changelog from the persisted offset, as it would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from faust.types import TP

from streams.faust_ext.rocksdb_memory import SharedMemoryTable


class ChangelogSender(Protocol):
    """What the table needs of the producer (the worker's ``DeliveryProducer``)."""

    def send_raw(self, topic: str, partition: int, key: bytes, value: bytes | None,
                 on_written: Callable[[int, int], None]) -> None:
        """Produce the record; ``on_written(partition, offset)`` once the broker has it (not
        for a record acknowledged without its offset: a resent batch found already written)."""

    def after_flush(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` after each pre-commit flush, when everything sent before it began is
        acknowledged."""


@dataclass(frozen=True, slots=True)
class _SentMessage:
    partition: int


@dataclass(frozen=True, slots=True)
class _Sent:
    """What Faust's table reads back from a send: the partition the record went to."""

    message: _SentMessage


class ProducerChangelogTable(SharedMemoryTable):
    """Keys and values must be bytes (raw serializers): they are written to Kafka as they are."""

    _producer: ChangelogSender | None = None

    def use_producer(self, producer: ChangelogSender) -> None:
        self._producer = producer
        self._written: dict[int, int] = {}  # partition -> highest changelog offset on the broker
        producer.after_flush(self.persist_offsets)

    def send_changelog(self, partition: int | None, key: Any, value: Any,
                       key_serializer: Any = None, value_serializer: Any = None) -> Any:
        if self._producer is None:
            return super().send_changelog(partition, key, value, key_serializer, value_serializer)
        if partition is None or not isinstance(key, bytes) or not isinstance(value, bytes | None):
            raise TypeError(f"table {self.name}: changelog writes need a partition and bytes, "
                            f"got partition={partition!r}, key {type(key)}, value {type(value)}")
        self._producer.send_raw(self.changelog_topic.get_topic_name(), partition, key, value,
                                self._on_written)
        return _Sent(_SentMessage(partition))

    def set_raw(self, partition: int, key: bytes, value: bytes) -> None:
        """What ``table[key] = value`` does for a raw value: store it, send the changelog record
        (same topic, partition, key and value), minus the per-call serializer lookups."""
        self.data._db_for_partition(partition).put(key, value)
        self.send_changelog(partition, key, value)

    def _on_written(self, partition: int, offset: int) -> None:
        if offset > self._written.get(partition, -1):
            self._written[partition] = offset

    def persist_offsets(self) -> None:
        """Remember how far the changelog is reflected in the local store (Faust's recovery
        starts reading there); called after a flush, so every offset here is on the broker."""
        written, self._written = self._written, {}
        topic = self.changelog_topic.get_topic_name()
        for partition, offset in written.items():
            self.data.set_persisted_offset(TP(topic, partition), offset)
