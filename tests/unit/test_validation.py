"""Rule 1 (the part after decoding): contract violations raise typed errors for the DLQ."""

import pytest
from unit_helpers import event, prefs

from streams.core.model import Channel, ChannelPreference, Preferences, QuietHours
from streams.core.routing import (
    InvalidEvent,
    InvalidPreferences,
    decode_event,
    decode_preferences,
    validate,
    validate_preferences,
)


def test_a_good_event_passes():
    validate(event(), key=b"u1")
    validate(event(template="social.like", data={"actor": "A", "object": "post"}), key="u1")


@pytest.mark.parametrize(
    ("ev", "reason"),
    [
        (event(event_id=""), "missing_event_id"),
        (event(event_id="x" * 300), "event_id_too_long"),
        (event(user_id=" "), "missing_user_id"),
        (event(category=""), "missing_category"),
        (event(occurred_at=0), "bad_occurred_at"),
        (event(title=None, body=None), "no_content"),
        (event(channels=()), "empty_channels"),
        (event(title="a\x00b"), "nul_character"),
        (event(body="\x00"), "nul_character"),
        (event(template="t", data={"actor": "A\x00"}), "nul_character"),
    ],
)
def test_invalid_events(ev, reason):
    with pytest.raises(InvalidEvent) as info:
        validate(ev)
    assert info.value.reason == reason
    assert "\x00" not in str(info.value), "the message names the field, it does not quote it"
    assert info.value.dlq_reason == "invalid"
    assert str(info.value).startswith(reason + ": ")


def test_key_must_match_user():
    with pytest.raises(InvalidEvent, match="key_mismatch"):
        validate(event(user_id="u1"), key=b"u2")


def test_decode_event_of_the_wrong_shape():
    with pytest.raises(InvalidEvent) as info:
        decode_event({"user_id": "u1"})
    assert info.value.reason == "malformed"


def test_decode_preferences_of_the_wrong_shape():
    with pytest.raises(InvalidPreferences, match="malformed"):
        decode_preferences({"channels": [{"channel": "FAX"}]})


@pytest.mark.parametrize(
    ("p", "reason"),
    [
        (prefs(quiet=(0, 1440)), "bad_quiet_hours"),
        (prefs(timezone="Europe/Atlantis"), "bad_timezone"),
        (prefs(timezone=""), "bad_timezone"),
        (
            Preferences("u1", channels={Channel.SMS: ChannelPreference(Channel.SMS, True, "x", 0)}),
            "bad_throttle_limit",
        ),
        (Preferences(""), "missing_user_id"),
        (
            Preferences("u1", channels={Channel.EMAIL: ChannelPreference(Channel.EMAIL, True, "a\x00@b")}),
            "nul_character",
        ),
    ],
)
def test_invalid_preferences(p, reason):
    with pytest.raises(InvalidPreferences) as info:
        validate_preferences(p)
    assert info.value.reason == reason


def test_good_preferences_pass():
    validate_preferences(
        Preferences("u1", quiet_hours=QuietHours(1320, 420), timezone="Asia/Kolkata"), key="u1"
    )


@pytest.mark.parametrize(
    ("field", "limit"),
    [("title", 200), ("body", 10_000), ("summary", 160), ("category", 128), ("template", 128),
     ("digest_key", 256), ("source", 128)],
)
def test_a_text_field_over_its_documented_maximum_is_refused_with_the_excess(field, limit):
    validate(event(**{field: "x" * limit}))  # at the maximum: fine
    with pytest.raises(InvalidEvent) as info:
        validate(event(**{field: "x" * (limit + 7)}))
    assert info.value.reason == f"{field}_too_long"
    assert info.value.dlq_reason == "invalid"
    assert f"{limit + 7:,} characters, 7 over its maximum of {limit:,}" in str(info.value)


def test_data_over_its_maximum_is_refused():
    validate(event(data={f"k{i}": "v" for i in range(50)}))
    with pytest.raises(InvalidEvent, match="data has 51 entries, 1 over its maximum of 50"):
        validate(event(data={f"k{i}": "v" for i in range(51)}))
    with pytest.raises(InvalidEvent, match="data_too_large: data has 10,002 characters"):
        validate(event(data={"k": "v" * 10_001}))
