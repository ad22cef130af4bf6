"""Per-user router state: dedupe memory, throttle windows, pending holds and pending fallbacks.

One ``UserState`` per user is kept in a changelogged table keyed by user_id. Because the seen
event ids, the throttle counts, the holds and the fallbacks live in the same value they are
written atomically, which is what makes replays after a crash detectable and idempotent (see
``router``), and a fallback survive a restart.

``to_dict`` is JSON-serialisable and compact (empty parts omitted, tuples as lists). It shares the
id lists with the live state instead of copying them: serialise it, don't keep it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streams.core.model import Channel, DigestItem, Priority
from streams.core.routing.seen import SeenLog

# 2: seen ids as one string (seen.py); 1 had a dict of [partition, offset, seen_at] lists and is
# still read, so a worker upgraded over an existing table carries on. The fallback keys are
# optional additions to 2: a state without them reads as one with nothing pending.
STATE_VERSION = 2
_READABLE_VERSIONS = (1, 2)

# Why a hold exists; each maps to the Delivery.reason used when it is flushed.
HOLD_DIGEST = "digest"
HOLD_QUIET = "quiet_hours"
HOLD_THROTTLE = "throttle"
FLUSH_REASONS = {
    HOLD_DIGEST: "digest_window",
    HOLD_QUIET: "quiet_hours_end",
    HOLD_THROTTLE: "throttle_window",
}
MIXED = "mixed"  # category (or absent digest_key) of a hold spanning several


def hold_key(channel: Channel, reason: str, group: str) -> str:
    """Holds are per (channel, reason, group); quiet-hours and throttle holds use group ''."""
    return f"{channel.key}|{reason}|{group}"


@dataclass(slots=True)
class Hold:
    """Events waiting to go out together on one channel."""

    channel: Channel
    group: str  # digest_key or category for digests; '' for quiet hours and throttle
    category: str  # shared category, or MIXED
    reason: str  # HOLD_DIGEST | HOLD_QUIET | HOLD_THROTTLE
    opened_at_ms: int
    due_at_ms: int
    event_ids: list[str]  # every event, in arrival order
    items: list[DigestItem]  # rendered newest few, newest first
    first_occurred_at: int
    priority: Priority  # highest of the events
    digest_key: str | None = None  # shared digest_key, else None
    expiring: dict[str, int] = field(default_factory=dict)  # event_id -> expires_at, if any

    @property
    def count(self) -> int:
        return len(self.event_ids)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "channel": self.channel.value,
            "group": self.group,
            "category": self.category,
            "reason": self.reason,
            "opened_at": self.opened_at_ms,
            "due_at": self.due_at_ms,
            "event_ids": self.event_ids,
            "items": [[i.event_id, i.title, i.body, i.occurred_at] for i in self.items],
            "first_occurred_at": self.first_occurred_at,
            "priority": self.priority.value,
        }
        if self.digest_key is not None:
            d["digest_key"] = self.digest_key
        if self.expiring:
            d["expiring"] = self.expiring
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Hold:
        return cls(
            channel=Channel(d["channel"]),
            group=d["group"],
            category=d["category"],
            reason=d["reason"],
            opened_at_ms=d["opened_at"],
            due_at_ms=d["due_at"],
            event_ids=list(d["event_ids"]),
            items=[DigestItem(*i) for i in d["items"]],
            first_occurred_at=d["first_occurred_at"],
            priority=Priority(d["priority"]),
            digest_key=d.get("digest_key"),
            expiring=dict(d.get("expiring") or {}),
        )


@dataclass(slots=True)
class PendingFallback:
    """A delivery on one channel of a fallback chain, waiting for its receipt or its deadline.

    It carries what the next channel's delivery needs (the event's text and attributes), because
    the event itself is gone by then.
    """

    delivery_id: str  # the delivery watched: a receipt for it settles this
    first_delivery_id: str  # the chain's first delivery, which every fallback links to
    channel: Channel  # where the watched delivery went
    remaining: list[Channel]  # the chain's channels still to try, in order
    due_at_ms: int  # no confirming receipt by then: the next channel
    timeout_ms: int
    event_id: str
    category: str
    priority: Priority
    title: str
    body: str
    occurred_at: int
    digest_key: str | None = None
    expires_at: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "first": self.first_delivery_id,
            "channel": self.channel.value,
            "remaining": [c.value for c in self.remaining],
            "due_at": self.due_at_ms,
            "timeout": self.timeout_ms,
            "event_id": self.event_id,
            "category": self.category,
            "priority": self.priority.value,
            "title": self.title,
            "body": self.body,
            "occurred_at": self.occurred_at,
        }
        if self.digest_key is not None:
            d["digest_key"] = self.digest_key
        if self.expires_at is not None:
            d["expires_at"] = self.expires_at
        return d

    @classmethod
    def from_dict(cls, delivery_id: str, d: dict[str, Any]) -> PendingFallback:
        return cls(
            delivery_id=delivery_id,
            first_delivery_id=d["first"],
            channel=Channel(d["channel"]),
            remaining=[Channel(c) for c in d["remaining"]],
            due_at_ms=d["due_at"],
            timeout_ms=d["timeout"],
            event_id=d["event_id"],
            category=d["category"],
            priority=Priority(d["priority"]),
            title=d["title"],
            body=d["body"],
            occurred_at=d["occurred_at"],
            digest_key=d.get("digest_key"),
            expires_at=d.get("expires_at"),
        )


@dataclass(slots=True)
class ThrottleWindow:
    """Deliveries counted in one fixed throttle window of one channel.

    The ids (not just a count) make counting idempotent when an event is replayed. The window
    before it is kept for one more window: a replay of an event routed just before the boundary
    must still know whether it was sent or folded (folded and flushed already, sending it again
    would deliver it twice: seen by `notipipe chaos` in a rolling restart).
    """

    window_start_ms: int
    sent_event_ids: list[str] = field(default_factory=list)
    previous_start_ms: int | None = None
    previous_sent_ids: list[str] = field(default_factory=list)

    def to_list(self) -> list[Any]:
        if self.previous_start_ms is None:
            return [self.window_start_ms, self.sent_event_ids]
        return [self.window_start_ms, self.sent_event_ids, self.previous_start_ms,
                self.previous_sent_ids]

    @classmethod
    def from_list(cls, v: list[Any]) -> ThrottleWindow:
        """From ``to_list``'s form; states written before the previous window was kept have two
        items."""
        if len(v) > 2:
            return cls(v[0], v[1], v[2], v[3])
        return cls(v[0], v[1])


@dataclass(slots=True)
class UserState:
    user_id: str = ""
    seen: SeenLog = field(default_factory=SeenLog)  # dedupe memory, in processing order
    throttle: dict[Channel, ThrottleWindow] = field(default_factory=dict)
    holds: dict[str, Hold] = field(default_factory=dict)
    fallbacks: dict[str, PendingFallback] = field(default_factory=dict)  # by watched delivery_id
    # delivery_id -> when its fallback went out: a receipt for it arriving later is late
    fell_back: dict[str, int] = field(default_factory=dict)

    def is_empty(self) -> bool:
        """Nothing left worth storing: the table entry can be deleted."""
        return not (self.seen or self.throttle or self.holds or self.fallbacks or self.fell_back)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"v": STATE_VERSION, "user_id": self.user_id}
        if self.seen:
            d["seen"] = self.seen.text
        if self.throttle:
            d["throttle"] = {ch.key: w.to_list() for ch, w in self.throttle.items()}
        if self.holds:
            d["holds"] = {k: h.to_dict() for k, h in self.holds.items()}
        if self.fallbacks:
            d["fallbacks"] = {k: f.to_dict() for k, f in self.fallbacks.items()}
        if self.fell_back:
            d["fell_back"] = self.fell_back
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> UserState:
        """Takes ownership of the lists and dicts in ``d`` (no copies on the hot path)."""
        if not d:
            return cls()
        version = d.get("v", STATE_VERSION)
        if version not in _READABLE_VERSIONS:
            raise ValueError(f"unsupported UserState version {version!r}")
        seen = d.get("seen")
        # Positional, and the fallback parts only when present (most states have none): a state
        # is decoded for every event, and keyword arguments cost more to match.
        state = cls(
            d.get("user_id", ""),
            SeenLog.from_entries(seen) if isinstance(seen, dict) else SeenLog(seen or ""),
            {Channel.parse(k): ThrottleWindow.from_list(v) for k, v in (d.get("throttle") or {}).items()},
            {k: Hold.from_dict(h) for k, h in (d.get("holds") or {}).items()},
        )
        if "fallbacks" in d:
            state.fallbacks = {k: PendingFallback.from_dict(k, f) for k, f in d["fallbacks"].items()}
        if "fell_back" in d:
            state.fell_back = d["fell_back"]
        return state
