"""Contract checks beyond what Avro enforces. Failures are typed so the caller can DLQ them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.core.model import Event, Preferences, Receipt
from streams.core.routing.quiet_hours import is_known_timezone

MAX_ID_LENGTH = 256  # ids are kept in state for the dedupe window: bound their size
# The documented maximums of an event's text fields (schemas/notification_event.avsc): the SDK
# refuses an event over one (streams/client/sdk.py), the router dead-letters it with the reason.
# Together they keep an encoded event far below the broker's 1 MB record limit.
MAX_CHARS = {"title": 200, "body": 10_000, "summary": 160, "category": 128, "template": 128,
             "digest_key": 256, "source": 128}
MAX_DATA_ENTRIES = 50
MAX_DATA_CHARS = 10_000  # keys and values of `data` together


class InvalidRecord(ValueError):
    """A decoded record breaks the contract. DLQ reason: 'invalid'."""

    dlq_reason = "invalid"

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class InvalidEvent(InvalidRecord):
    pass


class InvalidPreferences(InvalidRecord):
    pass


class InvalidReceipt(InvalidRecord):
    pass


def decode_event(d: Mapping[str, Any]) -> Event:
    """Event from an Avro dict; a dict of the wrong shape raises InvalidEvent('malformed')."""
    try:
        return Event.from_avro(d)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidEvent("malformed", f"not a NotificationEvent: {exc!r}") from exc


def decode_preferences(d: Mapping[str, Any]) -> Preferences:
    try:
        return Preferences.from_avro(d)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidPreferences("malformed", f"not a UserPreferences: {exc!r}") from exc


def decode_receipt(d: Mapping[str, Any]) -> Receipt:
    try:
        return Receipt.from_avro(d)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidReceipt("malformed", f"not a DeliveryStatus: {exc!r}") from exc


def validate_receipt(receipt: Receipt, key: str | bytes | None = None) -> None:
    """Raise InvalidReceipt for a receipt that cannot be joined with its user's state."""
    if not receipt.delivery_id or not receipt.delivery_id.strip():
        raise InvalidReceipt("missing_delivery_id", "delivery_id is empty")
    _check_user(receipt.user_id, key, InvalidReceipt)


def validate(event: Event, key: str | bytes | None = None) -> None:
    """Raise InvalidEvent if the event must not be routed. ``key``: the Kafka record key."""
    if not event.event_id or not event.event_id.strip():
        raise InvalidEvent("missing_event_id", "event_id is empty")
    if len(event.event_id) > MAX_ID_LENGTH:
        raise InvalidEvent(
            "event_id_too_long", f"event_id has {len(event.event_id)} chars, max {MAX_ID_LENGTH}"
        )
    _check_user(event.user_id, key, InvalidEvent)
    if not event.category or not event.category.strip():
        raise InvalidEvent("missing_category", "category is empty")
    _check_sizes(event)
    if event.occurred_at <= 0:
        raise InvalidEvent("bad_occurred_at", f"occurred_at={event.occurred_at} is not after 1970")
    if not (event.template or event.title or event.body):
        raise InvalidEvent("no_content", "neither template nor title/body is set")
    if event.channels is not None and not event.channels:
        raise InvalidEvent(
            "empty_channels", "channels is an empty list; use null for all enabled channels"
        )
    _check_no_nul(event, InvalidEvent)


# Text that reaches PostgreSQL: a NUL character there fails the JDBC sink's whole batch, and the
# sink then stops (it does not dead-letter), so such an event is refused here.
_EVENT_TEXT = ("event_id", "user_id", "category", "template", "title", "body", "digest_key", "source")


def _check_no_nul(event: Event, error: type[InvalidRecord]) -> None:
    for name in _EVENT_TEXT:
        value = getattr(event, name)
        if value is not None and "\x00" in value:
            raise error("nul_character", f"{name} contains a NUL character, which text columns cannot hold")
    for key, value in event.data.items():
        if "\x00" in key or "\x00" in value:
            raise error("nul_character", "data contains a NUL character, which text columns cannot hold")


def _check_sizes(event: Event) -> None:
    for name, limit in MAX_CHARS.items():
        value = getattr(event, name)
        if value is not None and len(value) > limit:
            raise InvalidEvent(f"{name}_too_long", f"{name} has {len(value):,} characters, "
                               f"{len(value) - limit:,} over its maximum of {limit:,}")
    data = event.data
    if len(data) > MAX_DATA_ENTRIES:
        raise InvalidEvent("data_too_large", f"data has {len(data)} entries, "
                           f"{len(data) - MAX_DATA_ENTRIES} over its maximum of {MAX_DATA_ENTRIES}")
    chars = sum(len(k) + len(v) for k, v in data.items())
    if chars > MAX_DATA_CHARS:
        raise InvalidEvent("data_too_large", f"data has {chars:,} characters of keys and values, "
                           f"{chars - MAX_DATA_CHARS:,} over its maximum of {MAX_DATA_CHARS:,}")


def validate_preferences(prefs: Preferences, key: str | bytes | None = None) -> None:
    """Raise InvalidPreferences for a snapshot the router could only guess at."""
    _check_user(prefs.user_id, key, InvalidPreferences)
    qh = prefs.quiet_hours
    if qh is not None and not (0 <= qh.start_minute < 1440 and 0 <= qh.end_minute < 1440):
        raise InvalidPreferences(
            "bad_quiet_hours",
            f"start_minute={qh.start_minute}, end_minute={qh.end_minute}; expected 0..1439",
        )
    for cp in prefs.channels.values():
        if cp.address is not None and "\x00" in cp.address:
            raise InvalidPreferences("nul_character",
                                     f"the {cp.channel.key} address contains a NUL character")
    if not is_known_timezone(prefs.timezone):
        raise InvalidPreferences("bad_timezone", f"unknown IANA timezone {prefs.timezone!r}")
    for cp in prefs.channels.values():
        if cp.throttle_limit is not None and cp.throttle_limit < 1:
            raise InvalidPreferences(
                "bad_throttle_limit",
                f"{cp.channel.key} throttle_limit={cp.throttle_limit}; expected >= 1 or null",
            )
    for category, chain in prefs.fallbacks.items():
        if len(set(chain.channels)) != len(chain.channels):
            raise InvalidPreferences(
                "bad_fallback", f"the fallback chain of {category!r} names a channel twice"
            )
        if chain.timeout_ms is not None and chain.timeout_ms < 1000:
            raise InvalidPreferences(
                "bad_fallback",
                f"the fallback chain of {category!r} has timeout_seconds="
                f"{chain.timeout_ms // 1000}; expected >= 1 or null",
            )


def _check_user(user_id: str, key: str | bytes | None, error: type[InvalidRecord]) -> None:
    if not user_id or not user_id.strip():
        raise error("missing_user_id", "user_id is empty")
    if len(user_id) > MAX_ID_LENGTH:
        raise error("user_id_too_long", f"user_id has {len(user_id)} chars, max {MAX_ID_LENGTH}")
    if key is not None:
        if isinstance(key, bytes):
            key = key.decode("utf-8", "replace")
        # The key decides the partition; a mismatch would join the wrong partition's state.
        if key != user_id:
            raise error("key_mismatch", f"record key {key!r} != user_id {user_id!r}")
