"""The SDK refuses what the pipeline would refuse, before sending: a field over its maximum, and a
record larger than its topic or the producer takes, saying which limit and by how much (instead of
librdkafka's MSG_SIZE_TOO_LARGE). No broker: the limits are the client's own or stood in for."""

from __future__ import annotations

import json

import pytest
from offline_pipeline import RegisteredRegistry

import streams.client.sdk
from streams.client.sdk import ClientSettings, NotificationClient, RecordTooLarge
from streams.core.routing.validation import InvalidEvent

NO_BROKER = "127.0.0.1:9"


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bytes]]:
    """What reached librdkafka's produce: (topic, key)."""
    records: list[tuple[str, bytes]] = []
    monkeypatch.setattr(streams.client.sdk, "produce",
                        lambda producer, topic, key, value, on_delivery: records.append((topic, key)))
    return records


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, sent):
    monkeypatch.setattr(streams.client.sdk, "SchemaRegistryClient", lambda conf: RegisteredRegistry())
    built = NotificationClient(ClientSettings(NO_BROKER, "http://registry", "t."),
                               {"message.max.bytes": 30_000})
    built._topic_max_bytes = lambda topic: None  # the cluster does not say: the producer's applies
    return built


def test_a_field_over_its_maximum_is_refused_before_anything_is_sent(client, sent) -> None:
    with pytest.raises(InvalidEvent, match="body_too_long: body has 10,001 characters, 1 over"):
        client.send(user_id="u1", category="news", title="t", body="b" * 10_001)
    assert sent == []


def test_a_record_over_the_producers_limit_says_which_limit_and_by_how_much(client, sent) -> None:
    # Every field within its maximum, but four-byte characters make the record large.
    with pytest.raises(RecordTooLarge) as info:
        client.send(user_id="u1", category="news", title="t", body="\U0001F600" * 9_000)
    message = str(info.value)
    assert "over the producer's message.max.bytes, 30,000 bytes" in message
    assert "its largest fields: body 9,000 characters" in message
    size = int(message.split(" is ")[1].split(" bytes")[0].replace(",", ""))
    assert f"{size - 30_000:,} bytes over" in message
    assert sent == []


def test_the_topics_limit_applies_when_it_is_the_lower_one(client, sent) -> None:
    client._topic_max_bytes = lambda topic: 20_000
    with pytest.raises(RecordTooLarge, match="over the max.message.bytes of topic "
                                             "t.notifications.events, 20,000 bytes"):
        client.send(user_id="u1", category="news", title="t", body="\U0001F600" * 6_000)
    client.send(user_id="u1", category="news", title="t", body="small")  # unchecked: far below
    assert sent == [("t.notifications.events", b"u1")]


def test_a_producer_pinned_to_an_event_version_writes_that_version(monkeypatch) -> None:
    monkeypatch.setattr(streams.client.sdk, "SchemaRegistryClient", lambda conf: RegisteredRegistry())
    pinned = NotificationClient(ClientSettings(NO_BROKER, "http://registry", "t.", 1))
    fields = json.loads(pinned.codec.schema_text("t.notifications.events-value"))["fields"]
    assert "summary" not in {f["name"] for f in fields}
    current = NotificationClient(ClientSettings(NO_BROKER, "http://registry", "t."))
    fields = json.loads(current.codec.schema_text("t.notifications.events-value"))["fields"]
    assert "summary" in {f["name"] for f in fields}
