"""Per-user router state: dedupe memory, throttle windows and pending holds.

One ``UserState`` per user is kept in a changelogged table keyed by user_id. Because the seen
event ids, the throttle counts and the holds live in the same value they are written atomically,
which is what makes replays after a crash detectable and idempotent (see ``router``).

``to_dict`` is JSON-serialisable and compact (empty parts omitted, tuples as lists). It shares the
id lists with the live state instead of copying them: serialise it, don't keep it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streams.core.model import Channel, DigestItem, Priority
from streams.core.routing.seen import SeenLog

# 2: seen ids as one string (seen.py); 1 had a dict of [partition, offset, seen_at] lists and is
# still read, so a worker upgraded over an existing table carries on.
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

    def is_empty(self) -> bool:
        """Nothing left worth storing: the table entry can be deleted."""
        return not (self.seen or self.throttle or self.holds)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"v": STATE_VERSION, "user_id": self.user_id}
        if self.seen:
            d["seen"] = self.seen.text
        if self.throttle:
            d["throttle"] = {ch.key: w.to_list() for ch, w in self.throttle.items()}
        if self.holds:
            d["holds"] = {k: h.to_dict() for k, h in self.holds.items()}
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
        return cls(
            user_id=d.get("user_id", ""),
            seen=SeenLog.from_entries(seen) if isinstance(seen, dict) else SeenLog(seen or ""),
            throttle={
                Channel.parse(k): ThrottleWindow.from_list(v)
                for k, v in (d.get("throttle") or {}).items()
            },
            holds={k: Hold.from_dict(h) for k, h in (d.get("holds") or {}).items()},
        )
