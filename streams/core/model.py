"""Typed records of the router and their converters from/to the Avro dicts that fastavro handles.

Timestamps are ints (epoch milliseconds UTC) everywhere inside the router. Event, Delivery and
DigestItem are created per message, so they are plain (not frozen) slots dataclasses: frozen ones
cost an ``object.__setattr__`` per field. Treat them as immutable all the same. ``AvroCodec`` reads
``timestamp-millis`` as plain ints; converters also accept ``datetime`` so records decoded by other
means work too. Enum values are ``StrEnum`` members, i.e. real ``str`` equal to the Avro symbol.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

AvroDict = dict[str, Any]


class Channel(StrEnum):
    EMAIL = "EMAIL"
    SMS = "SMS"
    PUSH = "PUSH"
    IN_APP = "IN_APP"

    @property
    def key(self) -> str:
        """Lower-case name used in topics, env variables, metrics and ``muted_by_channel``."""
        return _CHANNEL_KEYS[self]

    @classmethod
    def parse(cls, name: str) -> Channel:
        """Accept ``email``, ``EMAIL``, ``in_app``, ``in-app``."""
        return cls(name.strip().upper().replace("-", "_"))


_CHANNEL_KEYS = {c: c.value.lower() for c in Channel}
CHANNEL_ORDER: tuple[Channel, ...] = tuple(Channel)
# Channels whose delivery needs an address from the preferences; in-app uses the user id.
ADDRESSED_CHANNELS = frozenset({Channel.EMAIL, Channel.SMS, Channel.PUSH})


class Priority(StrEnum):
    LOW = "LOW"
    NORMAL = "NORMAL"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"

    @property
    def rank(self) -> int:
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {p: i for i, p in enumerate(Priority)}


class DeliveryMode(StrEnum):
    IMMEDIATE = "IMMEDIATE"
    DIGEST = "DIGEST"


class DeliveryKind(StrEnum):
    SINGLE = "SINGLE"
    DIGEST = "DIGEST"


class ReceiptStatus(StrEnum):
    DELIVERED = "DELIVERED"
    OPENED = "OPENED"
    BOUNCED = "BOUNCED"
    FAILED = "FAILED"

    @property
    def confirms(self) -> bool:
        """The recipient got it: no fallback is needed."""
        return self in _CONFIRMING


_CONFIRMING = frozenset({ReceiptStatus.DELIVERED, ReceiptStatus.OPENED})


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def to_ms(value: int | datetime) -> int:
    """Epoch milliseconds from an int (returned as is) or a datetime (naive = UTC)."""
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return (value - _EPOCH) // _ONE_MS
    raise TypeError(f"expected epoch milliseconds (int) or datetime, got {type(value).__name__}")


def _opt_ms(value: int | datetime | None) -> int | None:
    return None if value is None else to_ms(value)


@dataclass(slots=True)
class Event:
    """A decoded NotificationEvent."""

    event_id: str
    user_id: str
    category: str
    occurred_at: int
    priority: Priority = Priority.NORMAL
    template: str | None = None
    data: Mapping[str, str] = field(default_factory=dict)
    title: str | None = None
    body: str | None = None
    channels: tuple[Channel, ...] | None = None
    digest_key: str | None = None
    expires_at: int | None = None
    source: str | None = None
    summary: str | None = None  # contract v2: SMS and push carry it instead of the body

    @classmethod
    def from_avro(cls, d: Mapping[str, Any]) -> Event:
        channels = d.get("channels")
        return cls(
            event_id=d["event_id"],
            user_id=d["user_id"],
            category=d["category"],
            occurred_at=to_ms(d["occurred_at"]),
            priority=Priority(d.get("priority") or Priority.NORMAL),
            template=d.get("template"),
            data=d.get("data") or {},
            title=d.get("title"),
            body=d.get("body"),
            channels=None if channels is None else tuple(Channel(c) for c in channels),
            digest_key=d.get("digest_key"),
            expires_at=_opt_ms(d.get("expires_at")),
            source=d.get("source"),
            summary=d.get("summary"),
        )

    def to_avro(self) -> AvroDict:
        return {
            "event_id": self.event_id,
            "user_id": self.user_id,
            "category": self.category,
            "priority": str(self.priority),
            "template": self.template,
            "data": dict(self.data),
            "title": self.title,
            "body": self.body,
            "channels": None if self.channels is None else [str(c) for c in self.channels],
            "digest_key": self.digest_key,
            "occurred_at": self.occurred_at,
            "expires_at": self.expires_at,
            "source": self.source,
            "summary": self.summary,
        }


@dataclass(slots=True, frozen=True)
class ChannelPreference:
    channel: Channel
    enabled: bool = True
    address: str | None = None
    throttle_limit: int | None = None


@dataclass(slots=True, frozen=True)
class QuietHours:
    """Daily local period [start_minute, end_minute); start > end spans midnight."""

    start_minute: int
    end_minute: int

    def contains(self, minute_of_day: int) -> bool:
        start, end = self.start_minute, self.end_minute
        if start < end:
            return start <= minute_of_day < end
        if start > end:
            return minute_of_day >= start or minute_of_day < end
        return False  # start == end: empty period, i.e. no quiet hours


@dataclass(slots=True, frozen=True)
class FallbackChain:
    """Channels to try in turn; ``timeout_ms`` None means the configured default."""

    channels: tuple[Channel, ...]
    timeout_ms: int | None = None


@dataclass(slots=True, frozen=True)
class Preferences:
    """A decoded UserPreferences snapshot, indexed for the router's lookups."""

    user_id: str
    channels: Mapping[Channel, ChannelPreference] = field(default_factory=dict)
    muted_categories: frozenset[str] = frozenset()
    muted_by_channel: Mapping[Channel, frozenset[str]] = field(default_factory=dict)
    category_modes: Mapping[str, DeliveryMode] = field(default_factory=dict)
    quiet_hours: QuietHours | None = None
    timezone: str = "UTC"
    updated_at: int = 0
    fallbacks: Mapping[str, FallbackChain] = field(default_factory=dict)

    @classmethod
    def from_avro(cls, d: Mapping[str, Any]) -> Preferences:
        channels: dict[Channel, ChannelPreference] = {}
        for c in d.get("channels") or ():
            ch = Channel(c["channel"])
            channels[ch] = ChannelPreference(
                channel=ch,
                enabled=c.get("enabled", True),
                address=c.get("address"),
                throttle_limit=c.get("throttle_limit"),
            )
        muted_by_channel: dict[Channel, frozenset[str]] = {}
        for key, cats in (d.get("muted_by_channel") or {}).items():
            try:
                ch = Channel.parse(key)
            except ValueError:
                continue  # a channel this version does not know: nothing to mute here
            muted_by_channel[ch] = frozenset(cats)
        qh = d.get("quiet_hours")
        return cls(
            user_id=d["user_id"],
            channels=channels,
            muted_categories=frozenset(d.get("muted_categories") or ()),
            muted_by_channel=muted_by_channel,
            category_modes={k: DeliveryMode(v) for k, v in (d.get("category_modes") or {}).items()},
            quiet_hours=None if qh is None else QuietHours(qh["start_minute"], qh["end_minute"]),
            timezone=d.get("timezone") or "UTC",
            updated_at=to_ms(d.get("updated_at", 0)),
            fallbacks={
                category: FallbackChain(
                    tuple(Channel(c) for c in chain["channels"]),
                    None if chain.get("timeout_seconds") is None else chain["timeout_seconds"] * 1000,
                )
                for category, chain in (d.get("fallbacks") or {}).items()
            },
        )

    def to_avro(self) -> AvroDict:
        qh = self.quiet_hours
        return {
            "user_id": self.user_id,
            "channels": [
                {
                    "channel": str(cp.channel),
                    "enabled": cp.enabled,
                    "address": cp.address,
                    "throttle_limit": cp.throttle_limit,
                }
                for ch in CHANNEL_ORDER
                if (cp := self.channels.get(ch)) is not None
            ],
            "muted_categories": sorted(self.muted_categories),
            "muted_by_channel": {ch.key: sorted(c) for ch, c in self.muted_by_channel.items()},
            "category_modes": {k: str(v) for k, v in self.category_modes.items()},
            "quiet_hours": None
            if qh is None
            else {"start_minute": qh.start_minute, "end_minute": qh.end_minute},
            "timezone": self.timezone,
            "updated_at": self.updated_at,
            "fallbacks": {
                category: {
                    "channels": [str(c) for c in chain.channels],
                    "timeout_seconds": None if chain.timeout_ms is None else chain.timeout_ms // 1000,
                }
                for category, chain in self.fallbacks.items()
            },
        }


@dataclass(slots=True)
class DigestItem:
    event_id: str
    title: str
    body: str
    occurred_at: int

    def to_avro(self) -> AvroDict:
        return {
            "event_id": self.event_id,
            "title": self.title,
            "body": self.body,
            "occurred_at": self.occurred_at,
        }

    @classmethod
    def from_avro(cls, d: Mapping[str, Any]) -> DigestItem:
        return cls(d["event_id"], d["title"], d["body"], to_ms(d["occurred_at"]))


@dataclass(slots=True)
class Delivery:
    """One notification on one channel, as written to notifications.deliveries.<channel>."""

    delivery_id: str
    user_id: str
    channel: Channel
    address: str | None
    kind: DeliveryKind
    category: str
    priority: Priority
    title: str
    body: str
    event_ids: tuple[str, ...]
    item_count: int
    items: tuple[DigestItem, ...]
    digest_key: str | None
    reason: str
    created_at: int
    first_occurred_at: int
    fallback_of: str | None = None  # a fallback: the delivery_id of its chain's first delivery

    @property
    def topic_suffix(self) -> str:
        return self.channel.key

    def to_avro(self) -> AvroDict:
        return {
            "delivery_id": self.delivery_id,
            "user_id": self.user_id,
            "channel": str(self.channel),
            "address": self.address,
            "kind": str(self.kind),
            "category": self.category,
            "priority": str(self.priority),
            "title": self.title,
            "body": self.body,
            "event_ids": list(self.event_ids),
            "item_count": self.item_count,
            "items": [i.to_avro() for i in self.items],
            "digest_key": self.digest_key,
            "reason": self.reason,
            "created_at": self.created_at,
            "first_occurred_at": self.first_occurred_at,
            "fallback_of": self.fallback_of,
        }

    @classmethod
    def from_avro(cls, d: Mapping[str, Any]) -> Delivery:
        return cls(
            delivery_id=d["delivery_id"],
            user_id=d["user_id"],
            channel=Channel(d["channel"]),
            address=d.get("address"),
            kind=DeliveryKind(d["kind"]),
            category=d["category"],
            priority=Priority(d["priority"]),
            title=d["title"],
            body=d["body"],
            event_ids=tuple(d["event_ids"]),
            item_count=d["item_count"],
            items=tuple(DigestItem.from_avro(i) for i in d.get("items") or ()),
            digest_key=d.get("digest_key"),
            reason=d["reason"],
            created_at=to_ms(d["created_at"]),
            first_occurred_at=to_ms(d["first_occurred_at"]),
            fallback_of=d.get("fallback_of"),
        )


@dataclass(slots=True)
class Receipt:
    """A decoded DeliveryStatus: what a provider gateway reported about one delivery."""

    delivery_id: str
    user_id: str
    channel: Channel
    status: ReceiptStatus
    reported_at: int
    received_at: int
    reason: str | None = None
    provider: str | None = None

    @classmethod
    def from_avro(cls, d: Mapping[str, Any]) -> Receipt:
        return cls(
            delivery_id=d["delivery_id"],
            user_id=d["user_id"],
            channel=Channel(d["channel"]),
            status=ReceiptStatus(d["status"]),
            reported_at=to_ms(d["reported_at"]),
            received_at=to_ms(d["received_at"]),
            reason=d.get("reason"),
            provider=d.get("provider"),
        )

    def to_avro(self) -> AvroDict:
        return {
            "delivery_id": self.delivery_id,
            "user_id": self.user_id,
            "channel": str(self.channel),
            "status": str(self.status),
            "reason": self.reason,
            "provider": self.provider,
            "reported_at": self.reported_at,
            "received_at": self.received_at,
        }


def dead_letter(
    *,
    source_topic: str,
    source_partition: int,
    source_offset: int,
    key: bytes | None,
    value: bytes | None,
    reason: str,
    error: str,
    failed_at: int,
) -> AvroDict:
    """A DeadLetter Avro dict; reason is one of ``DEAD_LETTER_REASONS``."""
    if reason not in DEAD_LETTER_REASONS:
        raise ValueError(f"unknown dead-letter reason {reason!r}; expected {DEAD_LETTER_REASONS}")
    return {
        "source_topic": source_topic,
        "source_partition": source_partition,
        "source_offset": source_offset,
        "key": key,
        "value": value,
        "reason": reason,
        "error": error,
        "failed_at": failed_at,
    }


DEAD_LETTER_REASONS = ("undecodable", "unknown_schema", "invalid")
