"""The pre-commit flush waits for changelog records as well as deliveries, and reports which are
missing. A real librdkafka client pointed at a port where no broker listens: nothing is acked.
Commits go through Faust's real consumer on a stand-in broker (fake_broker.py)."""

import asyncio
from typing import Any

import pytest
from fake_broker import EV0, WorkerApp, ack_all, draining, queued
from test_avro_codec import FakeRegistry

from streams.contracts.avro_codec import AvroCodec
from streams.contracts.schemas import schema_text
from streams.core.model import Channel, Delivery, DeliveryKind, Priority
from streams.faust_ext.commit_hook import flush_before_commits
from streams.worker.delivery_producer import DeliveryProduceError, DeliveryProducer
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
    with pytest.raises(DeliveryProduceError, match="1 changelog records still unacknowledged"):
        producer.flush_blocking()
    assert written == []


def test_flush_waits_for_deliveries():
    producer = _producer()
    producer.send(Delivery(
        delivery_id="d1", user_id="u1", channel=Channel.EMAIL, address="u1@example.com",
        kind=DeliveryKind.SINGLE, category="social.like", priority=Priority.NORMAL, title="t",
        body="b", event_ids=("e1",), item_count=1, items=(), digest_key=None,
        reason="immediate", created_at=1, first_occurred_at=1))
    with pytest.raises(DeliveryProduceError, match="1 deliveries still unacknowledged"):
        producer.flush_blocking()


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
    with pytest.raises(DeliveryProduceError, match="1 changelog records still unacknowledged"):
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
