"""The users table (streams/faust_ext/changelog_table.py): Faust's real table and RocksDB store in a
temporary directory; its changelog records go to ``BrokerAcks`` (worker_tables.py), which stands
in for the broker behind the worker's librdkafka producer."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from faust.types import TP
from worker_tables import BrokerAcks, processing_event_of, users_table

from streams.faust_ext.changelog_table import ProducerChangelogTable


def changelog_tp(table: ProducerChangelogTable, partition: int) -> TP:
    return TP(table.changelog_topic.get_topic_name(), partition)


def test_a_raw_write_is_stored_in_its_partition_and_sent_as_fausts_changelog_record(
        tmp_path: Path) -> None:
    broker = BrokerAcks()
    table = users_table(tmp_path, broker)
    table.set_raw(1, b"u1", b'{"v":1}')
    assert table.get_raw(1, b"u1") == b'{"v":1}'
    assert table.get_raw(0, b"u1") is None  # another partition's database
    assert broker.records == [("changelog-table-test-users-changelog", 1, b"u1", b'{"v":1}')]


def test_fausts_own_writes_and_deletes_go_out_through_the_producer(tmp_path: Path) -> None:
    """``table[key] = value`` and ``del table[key]`` in a stream: Faust picks the partition from
    the current event and reads the partition back from what the send returned."""
    broker = BrokerAcks()
    table = users_table(tmp_path, broker)
    with processing_event_of(table.app, 1):
        table[b"u2"] = b"state"
        assert table.get_raw(1, b"u2") == b"state"
        del table[b"u2"]
    topic = table.changelog_topic.get_topic_name()
    assert broker.records == [(topic, 1, b"u2", b"state"), (topic, 1, b"u2", None)]
    assert table.get_raw(1, b"u2") is None


@pytest.mark.parametrize(("partition", "key", "value"), [
    (None, b"u1", b"{}"), (0, "u1", b"{}"), (0, b"u1", {"v": 1})])
def test_changelog_writes_that_are_not_raw_are_refused_naming_the_table(
        tmp_path: Path, partition: int | None, key: object, value: object) -> None:
    table = users_table(tmp_path, BrokerAcks())
    with pytest.raises(TypeError, match="table users: changelog writes need a partition and bytes"):
        table.send_changelog(partition, key, value)


def test_a_flush_persists_how_far_each_partitions_changelog_is_on_the_broker(
        tmp_path: Path) -> None:
    """Faust's recovery reads a partition's changelog from the offset persisted in its RocksDB;
    it is written once the broker holds the records (after the pre-commit flush), per partition."""
    broker = BrokerAcks(first_offsets={0: 40, 1: 7})
    table = users_table(tmp_path, broker)
    for n in range(3):
        table.set_raw(0, b"u%d" % n, b"{}")
    table.set_raw(1, b"u9", b"{}")
    assert table.data.persisted_offset(changelog_tp(table, 0)) is None  # not on the broker yet
    broker.flush()
    assert table.data.persisted_offset(changelog_tp(table, 0)) == 42
    assert table.data.persisted_offset(changelog_tp(table, 1)) == 7
    table.set_raw(0, b"u0", b'{"v":2}')
    broker.flush()
    assert table.data.persisted_offset(changelog_tp(table, 0)) == 43
    assert table.data.persisted_offset(changelog_tp(table, 1)) == 7  # nothing new there
    asyncio.run(table.data.stop())  # as the worker stops: the databases are dropped
    reopened = users_table(tmp_path)  # a restarted worker's recovery reads these
    assert reopened.data.persisted_offset(changelog_tp(reopened, 0)) == 43
    assert reopened.get_raw(0, b"u0") == b'{"v":2}'
