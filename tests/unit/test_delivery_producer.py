"""The pre-commit flush waits for the changelog records and deliveries sent before it began, and
reports which are missing. A real librdkafka client pointed at a port where no broker listens:
nothing is acked. Commits go through Faust's real consumer on a stand-in broker (fake_broker.py)."""

import asyncio
from typing import Any

import pytest
from fake_broker import EV0, WorkerApp, ack_all, draining, queued
from test_avro_codec import FakeRegistry

from streams.contracts.avro_codec import AvroCodec
from streams.contracts.schemas import schema_text
from streams.core.model import Channel, Delivery, DeliveryKind, Priority
from streams.faust_ext.commit_hook import flush_before_commits
from streams.worker.delivery_producer import (
    DeliveryProduceError,
    DeliveryProducer,
    SentSince,
    report_then,
    tell_offset,
)
from tests.waiting import wait_for_async

NO_BROKER = "127.0.0.1:9"  # the discard port: nothing listens there on a test machine


def _producer() -> DeliveryProducer:
    codec = AvroCodec(FakeRegistry(), {"deliveries.email-value": schema_text("delivery")})
    producer = DeliveryProducer({"bootstrap.servers": NO_BROKER}, codec, {"email": "deliveries.email"})
    producer.flush_timeout_s = 0.3
    return producer


def test_flush_waits_for_changelog_records():
    producer = _producer()
    written = []
    producer.send_raw("users-changelog", 0, b"u1", b"{}", lambda p, o: written.append((p, o)))
    with pytest.raises(DeliveryProduceError, match="0 deliveries and 1 changelog records sent before"):
        asyncio.run(producer.flush())
    assert written == []


def test_flush_waits_for_deliveries():
    producer = _producer()
    producer.send(Delivery(
        delivery_id="d1", user_id="u1", channel=Channel.EMAIL, address="u1@example.com",
        kind=DeliveryKind.SINGLE, category="social.like", priority=Priority.NORMAL, title="t",
        body="b", event_ids=("e1",), item_count=1, items=(), digest_key=None,
        reason="immediate", created_at=1, first_occurred_at=1))
    with pytest.raises(DeliveryProduceError, match="1 deliveries and 0 changelog records sent before"):
        asyncio.run(producer.flush())


def _worker_committing_through(producer: DeliveryProducer) -> WorkerApp:
    """A worker-like app whose Faust producer's pre-commit flush is hooked as the worker's is."""
    worker = WorkerApp()
    # Faust's own producer, not started, hooked as the worker hooks it.
    flush_before_commits(worker.app.producer, producer.flush_for_commit)
    return worker


async def _commit_after_routing(worker: WorkerApp) -> None:
    """Read two events, ack them (routed), and commit as Faust's commit timer does."""
    worker.broker.append(EV0, 2)
    consumer = await worker.start(EV0)
    async with draining(consumer):
        await wait_for_async(lambda: len(queued(worker.events)) == 2, 5, "two events")
        ack_all(worker.events)
        await consumer.commit()


def test_no_offset_is_committed_before_the_producer_has_everything_on_the_broker() -> None:
    producer = _producer()
    persisted: list[bool] = []
    producer.after_flush(lambda: persisted.append(True))
    worker = _worker_committing_through(producer)
    producer.send_raw("users-changelog", 0, b"u1", b"{}", lambda p, o: None)  # never acked
    with pytest.raises(DeliveryProduceError, match="0 deliveries and 1 changelog records sent before"):
        asyncio.run(_commit_after_routing(worker))
    # The events are routed again after a restart; their changelog offsets were not persisted.
    assert worker.broker.commits == [] and persisted == []


def test_commits_go_through_once_the_producer_is_flushed_and_offsets_persisted_first() -> None:
    producer = _producer()
    commits_seen_by_hook: list[list[Any]] = []
    worker = _worker_committing_through(producer)
    producer.after_flush(lambda: commits_seen_by_hook.append(list(worker.broker.commits)))
    asyncio.run(_commit_after_routing(worker))
    assert worker.broker.commits == [{EV0: 2}]
    assert commits_seen_by_hook == [[]]  # the hook ran before the commit


def test_a_flush_counts_what_was_sent_before_it_and_not_after() -> None:
    """The stretch logic alone, librdkafka's delivery reports called by hand."""
    refused: list[Any] = []
    sent = SentSince(lambda err, msg: refused.append(err))
    before = sent.report
    sent.current.add()
    sent.current.add()
    sent.close()  # a flush begins
    after = sent.report
    sent.current.add()
    assert sent.unacked() == 2
    after(None, None)  # a record sent during the flush acked: not what it waits for
    assert sent.unacked() == 2
    before(None, None)
    before("refused", None)  # refused is answered too: the flush then raises (poll)
    assert sent.unacked() == 0 and refused == ["refused"]


def test_a_stretch_left_unacked_by_a_failed_flush_is_waited_for_by_the_next() -> None:
    sent = SentSince(lambda err, msg: None)
    first = sent.report
    sent.current.add()
    sent.close()
    assert sent.unacked() == 1  # that flush gives up
    sent.current.add()
    second = sent.report
    sent.close()
    assert sent.unacked() == 2
    second(None, None)
    assert sent.unacked() == 1
    first(None, None)
    assert sent.unacked() == 0


class Report:
    """What librdkafka hands a delivery callback: the record's partition and offset (None when
    the broker acknowledged a resent batch as already written, without telling where)."""

    def __init__(self, offset: int | None) -> None:
        self._offset = offset

    def partition(self) -> int:
        return 2

    def offset(self) -> int | None:
        return self._offset

    def topic(self) -> str:
        return "users-changelog"


def test_a_changelog_record_acknowledged_without_its_offset_is_counted_and_not_told() -> None:
    counted, written, failed = [], [], []
    on_delivery = report_then(lambda err, msg: counted.append(err),
                              tell_offset(lambda p, o: written.append((p, o))), failed.append)
    on_delivery(None, Report(None))
    on_delivery(None, Report(41))
    on_delivery("refused", Report(None))
    assert counted == [None, None, "refused"]
    assert written == [(2, 41)] and failed == []


def test_what_a_written_handler_raises_is_kept_not_raised_into_librdkafka() -> None:
    failed: list[Exception] = []

    def broken(partition: int, offset: int) -> None:
        raise TypeError("broken handler")
    report_then(lambda err, msg: None, tell_offset(broken), failed.append)(None, Report(7))
    assert [str(error) for error in failed] == ["broken handler"]

