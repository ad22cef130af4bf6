"""The pre-commit flush waits for changelog records as well as deliveries, and reports which are
missing. A real librdkafka client pointed at a port where no broker listens: nothing is acked."""

import asyncio

import pytest
from test_avro_codec import FakeRegistry

from streams.contracts.avro_codec import AvroCodec
from streams.contracts.schemas import schema_text
from streams.core.model import Channel, Delivery, DeliveryKind, Priority
from streams.faust_ext.commit_hook import flush_before_commits
from streams.worker.delivery_producer import DeliveryProduceError, DeliveryProducer

NO_BROKER = "127.0.0.1:9"  # the discard port: nothing listens there on a test machine


def _producer() -> DeliveryProducer:
    codec = AvroCodec(FakeRegistry(), {"deliveries.email-value": schema_text("delivery")})
    producer = DeliveryProducer(NO_BROKER, codec, {"email": "deliveries.email"})
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


class _FaustProducer:
    def __init__(self) -> None:
        self.flushed = 0

    async def flush(self) -> None:
        self.flushed += 1


def test_commit_flush_fails_before_offsets_are_persisted():
    producer = _producer()
    persisted = []
    producer.after_flush(lambda: persisted.append(True))
    faust_producer = _FaustProducer()
    flush_before_commits(faust_producer, producer.flush_for_commit)
    producer.send_raw("users-changelog", 0, b"u1", b"{}", lambda p, o: None)
    with pytest.raises(DeliveryProduceError):
        asyncio.run(faust_producer.flush())
    # Faust's own flush and the hooks that persist changelog offsets never ran: the offsets
    # are not committed, the events are routed again after a restart.
    assert faust_producer.flushed == 0
    assert persisted == []
