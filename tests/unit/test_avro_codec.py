"""Confluent wire format codec with a fake in-memory registry (no network)."""

import json
import struct

import pytest
from avro_samples import sample
from unit_helpers import T0, event, prefs

from streams.contracts.avro_codec import AvroCodec, DecodeError, EncodeError, SchemaUnavailable
from streams.contracts.schemas import SCHEMA_NAMES, load_schema, schema_text, subject_for
from streams.core.model import Event, Preferences


class FakeRegistry:
    """The duck-typed registry: get_schema(id) -> str, register/lookup(subject, str) -> id."""

    def __init__(self):
        self.texts: dict[int, str] = {}
        self.ids: dict[tuple[str, str], int] = {}
        self.get_calls = 0

    def register(self, subject, text):
        key = (subject, text)
        if key not in self.ids:
            self.ids[key] = 100 + len(self.texts)
            self.texts[self.ids[key]] = text
        return self.ids[key]

    def lookup(self, subject, text):
        return self.ids[(subject, text)]

    def get_schema(self, schema_id):
        self.get_calls += 1
        return self.texts[schema_id]  # KeyError (a LookupError) = not found


class RegistryDown(FakeRegistry):
    def get_schema(self, schema_id):
        raise ConnectionError("registry unreachable")


class ConfluentLikeRegistry:
    """Same surface as confluent_kafka's SchemaRegistryClient for what the codec uses."""

    def __init__(self):
        self.inner = FakeRegistry()

    def register_schema(self, subject, schema):
        assert schema.schema_type == "AVRO"
        return self.inner.register(subject, schema.schema_str)

    def get_schema(self, schema_id):
        from confluent_kafka.schema_registry import Schema
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        if schema_id not in self.inner.texts:
            raise SchemaRegistryError(404, 40403, "Schema not found")
        return Schema(self.inner.texts[schema_id], "AVRO")


def codec_for_all(registry):
    return AvroCodec(registry, {subject_for(n): schema_text(n) for n in SCHEMA_NAMES})


@pytest.mark.parametrize("name", SCHEMA_NAMES)
@pytest.mark.parametrize("nulls", [False, True])
def test_round_trip_every_schema(name, nulls):
    codec = codec_for_all(FakeRegistry())
    record = sample(load_schema(name), nulls=nulls)
    data = codec.encode(subject_for(name), record)
    assert data[0] == 0
    schema_id, decoded = codec.decode(data)
    assert struct.unpack(">I", data[1:5])[0] == schema_id
    assert decoded == record  # timestamps stay ints both ways


def test_model_round_trip_through_the_wire():
    codec = codec_for_all(ConfluentLikeRegistry())
    ev = event(expires_at=T0 + 1, data={"a": "b"}, digest_key="k")
    _, d = codec.decode(codec.encode(subject_for("notification_event"), ev.to_avro()))
    assert Event.from_avro(d) == ev
    p = prefs(quiet=(1320, 420), timezone="Europe/Berlin")
    _, d = codec.decode(codec.encode(subject_for("user_preferences"), p.to_avro()))
    assert Preferences.from_avro(d) == p


def test_writer_schema_is_fetched_once_per_id():
    registry = FakeRegistry()
    producer = codec_for_all(registry)
    consumer = AvroCodec(registry, {"x": schema_text("notification_event")})
    payloads = [
        producer.encode(subject_for("notification_event"), event(f"e{i}").to_avro())
        for i in range(50)
    ]
    results = consumer.decode_many(payloads)
    assert [r[1]["event_id"] for r in results] == [f"e{i}" for i in range(50)]
    assert registry.get_calls == 1


def test_old_writer_is_resolved_to_the_reader_schema():
    old = load_schema("notification_event")
    old["fields"] = [f for f in old["fields"] if f["name"] not in ("source", "digest_key")]
    old["fields"][3]["type"]["symbols"] = ["LOW", "NORMAL", "HIGH", "CRITICAL", "URGENT"]
    registry = FakeRegistry()
    writer = AvroCodec(registry, {"ev-value": old})
    record = sample(old)
    record["priority"] = "URGENT"
    data = writer.encode("ev-value", record)
    reader = AvroCodec(registry, {"ev-value": schema_text("notification_event")})
    _, decoded = reader.decode(data)
    assert decoded["source"] is None and decoded["digest_key"] is None  # reader defaults
    assert decoded["priority"] == "NORMAL"  # unknown symbol -> enum default


def test_unreadable_writer_schema_is_unknown_schema():
    other = {
        "type": "record",
        "name": "NotificationEvent",
        "namespace": "io.notipipe.v1",
        "fields": [{"name": "event_id", "type": "int"}],
    }
    registry = FakeRegistry()
    data = AvroCodec(registry, {"s": other}).encode("s", {"event_id": 5})
    with pytest.raises(DecodeError) as info:
        codec_for_all(registry).decode(data)
    assert info.value.reason == "unknown_schema"


def test_json_bytes_get_a_helpful_message():
    with pytest.raises(DecodeError) as info:
        codec_for_all(FakeRegistry()).decode(json.dumps({"event_id": "e1"}).encode())
    assert info.value.reason == "undecodable"
    assert "first byte 0x7b, expected 0x00" in str(info.value)
    assert "JSON serializer" in str(info.value)


@pytest.mark.parametrize(
    ("payload", "reason", "text"),
    [
        (b"", "undecodable", "shorter than the 5-byte header"),
        (None, "undecodable", "tombstone"),
        (b"\x00\x00\x00\x03\xe7\x02", "unknown_schema", "999 is not in the registry"),
        (b"hello world", "undecodable", "string serializer"),
    ],
)
def test_garbage_raises_decode_error(payload, reason, text):
    with pytest.raises(DecodeError) as info:
        codec_for_all(FakeRegistry()).decode(payload)
    assert info.value.reason == reason
    assert text in str(info.value)


def test_truncated_and_padded_bodies_are_undecodable():
    codec = codec_for_all(FakeRegistry())
    good = codec.encode(subject_for("notification_event"), event().to_avro())
    for bad in (good[:-4], good + b"\x00\x01"):
        with pytest.raises(DecodeError) as info:
            codec.decode(bad)
        assert info.value.reason == "undecodable"


def test_confluent_404_is_unknown_schema():
    with pytest.raises(DecodeError) as info:
        codec_for_all(ConfluentLikeRegistry()).decode(b"\x00\x00\x00\x00\x07\x00")
    assert info.value.reason == "unknown_schema"


def test_registry_outage_is_not_the_records_fault():
    # A transient failure the caller waits out (streams/worker/schema_wait.py), never a DLQ reason.
    with pytest.raises(SchemaUnavailable, match="schema id 7.*registry unreachable") as info:
        codec_for_all(RegistryDown()).decode(b"\x00\x00\x00\x00\x07\x00")
    assert not isinstance(info.value, DecodeError)


class RegistryAnswering(FakeRegistry):
    """A registry that answers every request with an HTTP error status."""

    def __init__(self, status):
        super().__init__()
        self.status = status

    def get_schema(self, schema_id):
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        raise SchemaRegistryError(self.status, self.status * 100, "answered")

    def lookup(self, subject, text):
        self.get_schema(0)


@pytest.mark.parametrize("status", [500, 503, 401])
def test_an_error_status_other_than_not_found_is_transient(status):
    with pytest.raises(SchemaUnavailable):
        codec_for_all(RegistryAnswering(status)).decode(b"\x00\x00\x00\x00\x07\x00")


def test_a_written_subjects_id_while_the_registry_is_away_is_transient():
    codec = AvroCodec(RegistryAnswering(503), {"d-value": schema_text("delivery")}, auto_register=False)
    with pytest.raises(SchemaUnavailable, match="the id of d-value"):
        codec.schema_id("d-value")


def test_a_program_error_in_the_registry_client_is_not_taken_for_an_outage():
    class Broken(FakeRegistry):
        def get_schema(self, schema_id):
            raise AttributeError("a bug")

    with pytest.raises(AttributeError):
        codec_for_all(Broken()).decode(b"\x00\x00\x00\x00\x07\x00")


def test_uncached_ids_are_those_decoding_would_fetch():
    registry = FakeRegistry()
    codec = codec_for_all(registry)
    good = codec.encode(subject_for("notification_event"), event().to_avro())
    schema_id = struct.unpack(">I", good[1:5])[0]
    other = b"\x00" + struct.pack(">I", 4242) + b"\x00"
    assert codec.uncached_ids([good, other, b"{}", None, b"\x00"]) == {schema_id, 4242}
    codec.fetch_writer(schema_id)
    codec.fetch_writer(4242)  # not in the registry: left to decode, which dead-letters it
    assert codec.uncached_ids([good, other]) == {4242}
    assert registry.get_calls == 2
    with pytest.raises(DecodeError, match="4242 is not in the registry"):
        codec.decode(other)


def test_decode_many_keeps_going_past_bad_payloads():
    codec = codec_for_all(FakeRegistry())
    good = codec.encode(subject_for("notification_event"), event().to_avro())
    results = codec.decode_many([good, b"{}", good])
    assert isinstance(results[1], DecodeError)
    assert results[0] == results[2] and results[0][1]["event_id"] == "e1"


def test_encode_rejects_a_bad_record():
    with pytest.raises(EncodeError, match="notification_event-value"):
        codec_for_all(FakeRegistry()).encode(subject_for("notification_event"), {"event_id": 1})


def test_lookup_instead_of_register():
    registry = FakeRegistry()
    text = schema_text("delivery")
    registry.register("d-value", text)
    codec = AvroCodec(registry, {"d-value": text}, auto_register=False)
    assert codec.schema_id("d-value") == 100


def test_unknown_subject_is_a_clear_error():
    with pytest.raises(KeyError, match="no schema for subject"):
        codec_for_all(FakeRegistry()).encode("nope-value", {})


class RestartingRegistry(FakeRegistry):
    """Unreachable, then answering before it has loaded everything: "not found" for what it has."""

    def __init__(self):
        super().__init__()
        self.state = "up"

    def get_schema(self, schema_id):
        if self.state == "down":
            raise ConnectionError("registry unreachable")
        if self.state == "loading":
            raise KeyError(schema_id)
        return super().get_schema(schema_id)

    def lookup(self, subject, text):
        if self.state == "down":
            raise ConnectionError("registry unreachable")
        if self.state == "loading":
            raise KeyError(subject)
        return self.ids[(subject, text)]


def test_not_found_from_a_registry_that_was_just_away_is_transient_for_a_while():
    registry, now = RestartingRegistry(), [1000.0]
    writer = codec_for_all(registry)
    data = writer.encode(subject_for("notification_event"), event().to_avro())
    reader = AvroCodec(registry, {subject_for(n): schema_text(n) for n in SCHEMA_NAMES},
                       clock=lambda: now[0])
    registry.state = "down"
    with pytest.raises(SchemaUnavailable):
        reader.decode(data)
    registry.state = "loading"  # back, but its journal not replayed yet
    now[0] += 30
    with pytest.raises(SchemaUnavailable, match="may still be loading"):
        reader.decode(data)
    now[0] += 31  # a minute after it was last away: its "not found" is believed
    with pytest.raises(DecodeError) as info:
        reader.decode(data)
    assert info.value.reason == "unknown_schema"
    registry.state = "up"
    assert reader.decode(data)[1]["event_id"] == "e1"


def test_a_registry_that_does_not_know_a_written_subject_is_not_trusted_yet():
    registry, now = RestartingRegistry(), [1000.0]
    codec = AvroCodec(registry, {"d-value": schema_text("delivery")}, auto_register=False,
                      clock=lambda: now[0])
    registry.state = "loading"
    with pytest.raises(SchemaUnavailable, match="does not know d-value"):
        codec.schema_id("d-value")
    with pytest.raises(SchemaUnavailable):  # ...nor, meanwhile, its "not found" of an id
        codec.decode(b"\x00\x00\x00\x00\x07\x00")
