"""The benchmark's stand-in for the gateways' receipts: which deliveries get one, read from the
record's bytes without decoding it."""

from __future__ import annotations

from test_avro_codec import FakeRegistry
from unit_helpers import T0

from bench.receipts import BOUNCED_SHARE, delivery_id_of, receipt_status
from streams.contracts.avro_codec import AvroCodec
from streams.contracts.schemas import load_schema
from streams.core.model import Channel, Delivery, DeliveryKind, Priority, ReceiptStatus
from streams.core.routing.deliveries import delivery_id


def _encoded(delivery_id_: str) -> bytes:
    codec = AvroCodec(FakeRegistry(), {"d-value": load_schema("delivery")})
    delivery = Delivery(delivery_id_, "u1", Channel.SMS, "+49", DeliveryKind.SINGLE, "billing",
                        Priority.NORMAL, "t", "b", ("e1",), 1, (), None, "immediate", T0, T0)
    return codec.encode("d-value", delivery.to_avro())


def test_the_delivery_id_is_read_from_the_records_first_field() -> None:
    for id_ in ("d1", "x" * 63, "y" * 64, "z" * 300, "ünï"):
        assert delivery_id_of(_encoded(id_)) == id_


def test_a_share_of_deliveries_gets_a_receipt_one_in_ten_bounced_always_the_same() -> None:
    ids = [delivery_id("u", Channel.PUSH, DeliveryKind.SINGLE, [f"e{i}"]) for i in range(20_000)]
    statuses = [receipt_status(i, 0.5) for i in ids]
    answered = [s for s in statuses if s is not None]
    assert 0.47 < len(answered) / len(ids) < 0.53
    bounced = answered.count(ReceiptStatus.BOUNCED) / len(answered)
    assert abs(bounced - BOUNCED_SHARE) < 0.02
    assert set(answered) == {ReceiptStatus.DELIVERED, ReceiptStatus.BOUNCED}
    assert statuses == [receipt_status(i, 0.5) for i in ids]  # decided by the id alone
    assert all(receipt_status(i, 0.0) is None for i in ids[:100])
