"""The hand-written Delivery encoder writes exactly what fastavro writes, or is not used."""

import io
import json
import random

import fastavro
import pytest
from test_avro_codec import FakeRegistry
from unit_helpers import T0

from streams.contracts import delivery_avro
from streams.contracts.avro_codec import AvroCodec, EncodeError, wire_header
from streams.contracts.delivery_avro import DeliveryEncoder
from streams.contracts.schemas import load_schema, parsed_schema
from streams.core.model import Channel, Delivery, DeliveryKind, DigestItem, Priority

TEXTS = ("", "a", "x" * 63, "y" * 64, "z" * 200, "Grüße 🚀 ünïcödé", "line\nbreak", "é" * 5000)
LONGS = (0, 1, -1, 63, 64, -64, -65, 2**31 - 1, -(2**31), T0, 2**63 - 1, -(2**63))


def _random_delivery(rng: random.Random) -> Delivery:
    n_ids = rng.choice((1, 2, 63, 64, 65, 300))
    ids = tuple(f"ev-{rng.randrange(10**9)}" for _ in range(n_ids))
    digest = rng.random() < 0.5
    items = tuple(
        DigestItem(ids[i], rng.choice(TEXTS), rng.choice(TEXTS), rng.choice(LONGS))
        for i in range(min(len(ids), rng.choice((0, 1, 5))) if digest else 0)
    )
    return Delivery(
        delivery_id=f"{rng.getrandbits(128):032x}",
        user_id=rng.choice(("u1", "user-Ω", "u" * 100)),
        channel=rng.choice(list(Channel)),
        address=rng.choice((None, "u1@example.com", "", "+4915100000000")),
        kind=DeliveryKind.DIGEST if digest else DeliveryKind.SINGLE,
        category=rng.choice(("social.like", "billing.invoice", "")),
        priority=rng.choice(list(Priority)),
        title=rng.choice(TEXTS),
        body=rng.choice(TEXTS),
        event_ids=ids,
        item_count=rng.choice((len(ids), 0, 2**31 - 1, -(2**31))),
        items=items,
        digest_key=rng.choice((None, "post:42", "")),
        reason=rng.choice(("immediate", "digest_window", "critical")),
        created_at=rng.choice(LONGS),
        first_occurred_at=rng.choice(LONGS),
        fallback_of=rng.choice((None, f"{rng.getrandbits(128):032x}", "")),
    )


def _fastavro_bytes(delivery: Delivery, schema_id: int) -> bytes:
    out = io.BytesIO()
    out.write(wire_header(schema_id))
    fastavro.schemaless_writer(out, parsed_schema("delivery"), delivery.to_avro())
    return out.getvalue()


def test_the_project_schema_is_the_shape_the_encoder_writes():
    # Fails when schemas/delivery.avsc changes: update the encoder and SUPPORTED_SHAPE with it.
    assert delivery_avro.supports(load_schema("delivery"))


def test_any_other_shape_is_not_supported():
    schema = load_schema("delivery")
    schema["fields"].append({"name": "extra", "type": ["null", "string"], "default": None})
    assert not delivery_avro.supports(schema)
    reordered = load_schema("delivery")
    reordered["fields"][0], reordered["fields"][1] = reordered["fields"][1], reordered["fields"][0]
    assert not delivery_avro.supports(json.dumps(reordered))


def test_bytes_are_identical_to_fastavro_over_varied_deliveries():
    rng = random.Random(7)
    for n in range(600):
        delivery = _random_delivery(rng)
        expected = _fastavro_bytes(delivery, 1000 + n)
        assert delivery_avro.encode(delivery, wire_header(1000 + n)) == expected, delivery


@pytest.mark.parametrize(
    "change, error, fastavro_refuses",
    [
        # fastavro writes an int out of range (readers then fail or misread it); this refuses it
        ({"item_count": 2**31}, OverflowError, False),
        ({"created_at": 2**63}, OverflowError, True),
        ({"title": None}, AttributeError, True),
        ({"channel": "FAX"}, KeyError, True),
    ],
)
def test_a_delivery_that_does_not_fit_the_schema_is_refused(change, error, fastavro_refuses):
    base = _random_delivery(random.Random(1))
    bad = Delivery(**{**{f: getattr(base, f) for f in Delivery.__slots__}, **change})
    with pytest.raises(error):
        delivery_avro.encode(bad, wire_header(1))
    if fastavro_refuses:
        with pytest.raises((ValueError, TypeError, KeyError, AttributeError, OverflowError)):
            _fastavro_bytes(bad, 1)


def _codec_with(schema: dict) -> tuple[AvroCodec, dict[str, str]]:
    codec = AvroCodec(FakeRegistry(), auto_register=True)
    subjects = {ch.key: f"notifications.deliveries.{ch.key}-value" for ch in Channel}
    for subject in subjects.values():
        codec.add_subject(subject, schema)
    return codec, subjects


def test_encoder_uses_the_fast_path_for_the_known_schema_and_matches_the_codec():
    codec, subjects = _codec_with(load_schema("delivery"))
    encoder = DeliveryEncoder(codec, subjects)
    rng = random.Random(3)
    for _ in range(50):
        delivery = _random_delivery(rng)
        generic = codec.encode(subjects[delivery.channel.key], delivery.to_avro())
        assert encoder.encode(delivery) == generic


def test_encoder_falls_back_to_the_codec_for_a_changed_schema():
    schema = load_schema("delivery")
    schema["fields"].append({"name": "extra", "type": ["null", "string"], "default": None})
    codec, subjects = _codec_with(schema)
    encoder = DeliveryEncoder(codec, subjects)
    delivery = _random_delivery(random.Random(5))
    data = encoder.encode(delivery)
    _, record = codec.decode(data)
    assert record["extra"] is None and record["delivery_id"] == delivery.delivery_id


def test_encoder_errors_are_encode_errors_naming_the_subject():
    codec, subjects = _codec_with(load_schema("delivery"))
    base = _random_delivery(random.Random(1))
    bad = Delivery(**{**{f: getattr(base, f) for f in Delivery.__slots__}, "title": None})
    with pytest.raises(EncodeError, match="notifications.deliveries"):
        DeliveryEncoder(codec, subjects).encode(bad)
