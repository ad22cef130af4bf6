"""Model converters: Avro dicts <-> dataclasses, timestamps as epoch-ms ints."""

from datetime import UTC, datetime

import orjson
from faust.serializers import codecs
from unit_helpers import T0, cp, event, prefs

from streams.core.model import (
    Channel,
    Delivery,
    DeliveryKind,
    DeliveryMode,
    DigestItem,
    Event,
    Preferences,
    Priority,
    QuietHours,
    dead_letter,
    to_ms,
)


def test_to_ms_accepts_ints_and_datetimes():
    assert to_ms(T0) == T0
    assert to_ms(datetime(1970, 1, 1, 0, 0, 1, 500_000, tzinfo=UTC)) == 1500
    assert to_ms(datetime(1970, 1, 1, 0, 0, 1)) == 1000  # naive = UTC


def test_event_round_trip_and_datetime_input():
    ev = event(channels=(Channel.SMS,), expires_at=T0 + 5, priority=Priority.HIGH)
    assert Event.from_avro(ev.to_avro()) == ev
    d = ev.to_avro()
    d["occurred_at"] = datetime.fromtimestamp(ev.occurred_at / 1000, UTC)
    assert Event.from_avro(d).occurred_at == ev.occurred_at


def test_preferences_round_trip_with_lower_case_channel_keys():
    p = prefs(
        quiet=(1320, 420),
        timezone="Europe/Berlin",
        muted_categories=frozenset({"social"}),
        muted_by_channel={Channel.IN_APP: frozenset({"news"})},
        category_modes={"social.like": DeliveryMode.DIGEST},
    )
    d = p.to_avro()
    assert d["muted_by_channel"] == {"in_app": ["news"]}
    assert Preferences.from_avro(d) == p


def test_preferences_stored_by_faust_json_read_the_same_as_orjson():
    """The worker's preferences table held Faust-json values before it held orjson ones: a table
    or changelog kept from then must read as the same preferences."""
    p = prefs(channels=[cp(Channel.EMAIL, address="zoë@example.com"), cp(Channel.SMS, False)],
              quiet=(1320, 420), timezone="America/Sao_Paulo",
              muted_categories=frozenset({"social", "café"}),
              category_modes={"social.like": DeliveryMode.DIGEST})
    record = p.to_avro()
    for stored in (codecs.dumps("json", record), orjson.dumps(record)):
        assert Preferences.from_avro(orjson.loads(stored)) == p


def test_preferences_ignore_unknown_channel_mutes():
    d = prefs().to_avro()
    d["muted_by_channel"] = {"webhook": ["x"], "EMAIL": ["y"]}
    assert Preferences.from_avro(d).muted_by_channel == {Channel.EMAIL: frozenset({"y"})}


def test_quiet_hours_contains():
    night = QuietHours(22 * 60, 7 * 60)
    assert night.contains(23 * 60) and night.contains(0) and night.contains(6 * 60 + 59)
    assert not night.contains(7 * 60) and not night.contains(12 * 60)
    day = QuietHours(9 * 60, 17 * 60)
    assert day.contains(9 * 60) and not day.contains(17 * 60) and not day.contains(8 * 60)
    assert not QuietHours(600, 600).contains(600)


def test_delivery_round_trip():
    d = Delivery(
        delivery_id="x" * 32,
        user_id="u1",
        channel=Channel.PUSH,
        address="tok",
        kind=DeliveryKind.DIGEST,
        category="social.like",
        priority=Priority.LOW,
        title="2 new",
        body="- a\n- b",
        event_ids=("a", "b"),
        item_count=2,
        items=(DigestItem("b", "B", "bb", T0), DigestItem("a", "A", "aa", T0 - 1)),
        digest_key=None,
        reason="digest_window",
        created_at=T0,
        first_occurred_at=T0 - 1,
    )
    assert Delivery.from_avro(d.to_avro()) == d
    assert d.topic_suffix == "push"


def test_channel_parse():
    assert Channel.parse(" in-app ") is Channel.IN_APP
    assert Channel.EMAIL.key == "email"


def test_dead_letter_record():
    d = dead_letter(
        source_topic="t",
        source_partition=1,
        source_offset=2,
        key=b"u1",
        value=b"{}",
        reason="undecodable",
        error="bad",
        failed_at=T0,
    )
    assert d["value"] == b"{}" and d["reason"] == "undecodable"
    import pytest

    with pytest.raises(ValueError, match="unknown dead-letter reason"):
        dead_letter(
            source_topic="t",
            source_partition=1,
            source_offset=2,
            key=None,
            value=None,
            reason="oops",
            error="",
            failed_at=T0,
        )
