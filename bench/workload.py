"""The synthetic workload: users with preferences, and a stream of NotificationEvents.

Deterministic for a seed. Events are Avro-encoded ahead of the timed part (``encode_phase``) so
the load generator only calls ``produce``. Event ids are ``<phase>:<seq>``: the measurement maps
a delivery's ``event_ids`` back to the phase and to the produce time of the event.

No user has quiet hours *now*: quiet periods are placed hours away from the current local time,
so the rule is evaluated on every event (its cost is in the measurement) but no delivery waits
hours, and the set of delivered events does not depend on when the benchmark runs.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from streams.core.model import (
    Channel,
    ChannelPreference,
    DeliveryMode,
    Event,
    Preferences,
    Priority,
    QuietHours,
)

# Category -> (weight, template, data builder). social.like and social.follow are the router's
# default digest categories (NOTIPIPE_DIGEST_CATEGORIES).
DIGEST_CATEGORIES = ("social.like", "social.follow")
DEFAULT_CATEGORY_MIX: Mapping[str, float] = {
    "social.like": 0.30,
    "social.follow": 0.10,
    "social.comment": 0.15,
    "message.new": 0.20,
    "order.shipped": 0.10,
    "billing.invoice": 0.05,
    "security.login": 0.05,
    "marketing.promo": 0.05,
}
DEFAULT_PRIORITY_MIX: Mapping[str, float] = {"LOW": 0.20, "NORMAL": 0.60, "HIGH": 0.15, "CRITICAL": 0.05}
TIMEZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney")


@dataclass(frozen=True)
class WorkloadSpec:
    users: int = 10_000
    category_mix: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_CATEGORY_MIX))
    priority_mix: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_PRIORITY_MIX))
    digest_share: float | None = None  # None: as the category mix has it (0.40 by default)
    duplicate_share: float = 0.02
    seed: int = 42

    def __post_init__(self) -> None:
        if self.users < 1:
            raise ValueError("users must be >= 1")
        if not 0 <= self.duplicate_share < 1:
            raise ValueError("duplicate_share must be in [0, 1)")
        if self.digest_share is not None and not 0 <= self.digest_share <= 1:
            raise ValueError("digest_share must be in [0, 1]")

    def effective_category_mix(self) -> dict[str, float]:
        """The category weights, rescaled so digest categories make up ``digest_share``."""
        mix = {k: float(v) for k, v in self.category_mix.items() if v > 0}
        total = sum(mix.values())
        mix = {k: v / total for k, v in mix.items()}
        if self.digest_share is None:
            return mix
        digest = {k: v for k, v in mix.items() if k in DIGEST_CATEGORIES}
        other = {k: v for k, v in mix.items() if k not in DIGEST_CATEGORIES}
        if (self.digest_share > 0 and not digest) or (self.digest_share < 1 and not other):
            raise ValueError("the category mix cannot give that digest share")
        d_total, o_total = sum(digest.values()) or 1.0, sum(other.values()) or 1.0
        out = {k: v / d_total * self.digest_share for k, v in digest.items()}
        out.update({k: v / o_total * (1 - self.digest_share) for k, v in other.items()})
        return out


def user_id(i: int) -> str:
    return f"u{i:07d}"


def _local_minute(tz: str, now_s: float) -> int:
    local = datetime.fromtimestamp(now_s, ZoneInfo(tz))
    return local.hour * 60 + local.minute


def preferences_for(spec: WorkloadSpec, now_s: float | None = None) -> list[Preferences]:
    """One snapshot per user: a realistic spread of channels, mutes, modes and quiet hours."""
    now_s = time.time() if now_s is None else now_s
    rng = random.Random(spec.seed)
    out = []
    for i in range(spec.users):
        uid = user_id(i)
        channels = {Channel.IN_APP: ChannelPreference(Channel.IN_APP)}
        if rng.random() < 0.8:
            channels[Channel.EMAIL] = ChannelPreference(Channel.EMAIL, True, f"{uid}@example.com")
        else:
            channels[Channel.EMAIL] = ChannelPreference(Channel.EMAIL, False)
        if rng.random() < 0.5:
            channels[Channel.PUSH] = ChannelPreference(Channel.PUSH, True, f"tok-{uid}")
        if rng.random() < 0.1:
            channels[Channel.SMS] = ChannelPreference(Channel.SMS, True, f"+4915{i:08d}", throttle_limit=3)
        muted = frozenset({"social.comment"}) if rng.random() < 0.1 else frozenset()
        by_channel = {Channel.EMAIL: frozenset({"social"})} if rng.random() < 0.2 else {}
        modes = {}
        if rng.random() < 0.1:
            modes["social.like"] = DeliveryMode.IMMEDIATE
        if rng.random() < 0.05:
            modes["marketing"] = DeliveryMode.DIGEST
        tz = rng.choice(TIMEZONES)
        quiet = None
        if rng.random() < 0.3:
            # A two-hour period starting six hours from now, local time: never active during a run.
            start = (_local_minute(tz, now_s) + 360) % 1440
            quiet = QuietHours(start, (start + 120) % 1440)
        out.append(
            Preferences(
                user_id=uid,
                channels=channels,
                muted_categories=muted,
                muted_by_channel=by_channel,
                category_modes=modes,
                quiet_hours=quiet,
                timezone=tz,
                updated_at=int(now_s * 1000),
            )
        )
    return out


_ACTORS = ("ada", "grace", "linus", "barbara", "ken", "margaret", "dennis", "frances")


def _event(rng: random.Random, event_id: str, uid: str, category: str, priority: str, now_ms: int) -> Event:
    data: dict[str, str]
    title = body = None
    digest_key = None
    channels = None
    if category.startswith("social"):
        data = {
            "actor": rng.choice(_ACTORS),
            "object": rng.choice(("post", "photo", "comment")),
            "comment": "nice!",
        }
        if category == "social.like" and rng.random() < 0.5:
            digest_key = f"post-{rng.randrange(1000)}"
    elif category == "message.new":
        data = {"sender": rng.choice(_ACTORS), "preview": "are you coming tonight?"}
        if rng.random() < 0.3:
            channels = (Channel.IN_APP, Channel.PUSH)
    elif category == "order.shipped":
        data = {"order_id": f"o-{rng.randrange(10**6)}", "eta": "tomorrow"}
    elif category == "billing.invoice":
        data = {"invoice_id": f"i-{rng.randrange(10**6)}", "amount": "12.00 EUR", "due_date": "2026-12-01"}
    elif category == "security.login":
        data = {"device": "Firefox on Linux", "location": "Berlin"}
    else:
        data = {}
        title, body = "Black Friday", "Everything 20 % off this weekend."
    template = category if data else None
    if rng.random() < 0.1:
        channels = (Channel.IN_APP,)
    return Event(
        event_id=event_id,
        user_id=uid,
        category=category,
        occurred_at=now_ms,
        priority=Priority(priority),
        template=template,
        data=data,
        title=title,
        body=body,
        channels=channels,
        digest_key=digest_key,
        source="bench",
    )


class EventStream:
    """Draws events for a phase; a share of them repeat an earlier event_id (true duplicates)."""

    def __init__(self, spec: WorkloadSpec) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed + 1)
        mix = spec.effective_category_mix()
        self._categories = list(mix)
        self._cat_weights = list(mix.values())
        self._priorities = list(spec.priority_mix)
        self._prio_weights = list(spec.priority_mix.values())
        self._recent: list[tuple[bytes, bytes, str]] = []  # (key, value, event_id) for duplicates

    def phase(
        self, phase: str, count: int, encode, now_ms: int | None = None
    ) -> tuple[list[bytes], list[bytes], list[str]]:
        """``count`` records for ``phase``: (keys, Avro values, event ids). ``encode``: Event -> bytes.

        A duplicate repeats an event of the same phase (so the dedupe table certainly holds it)."""
        rng = self.rng
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        keys: list[bytes] = []
        values: list[bytes] = []
        ids: list[str] = []
        self._recent = []
        cats = rng.choices(self._categories, self._cat_weights, k=count)
        prios = rng.choices(self._priorities, self._prio_weights, k=count)
        users = self.spec.users
        for seq in range(count):
            if self._recent and rng.random() < self.spec.duplicate_share:
                key, value, eid = self._recent[rng.randrange(len(self._recent))]
            else:
                eid = f"{phase}:{seq}"
                uid = user_id(rng.randrange(users))
                value = encode(_event(rng, eid, uid, cats[seq], prios[seq], now_ms))
                key = uid.encode()
                if len(self._recent) < 1000:
                    self._recent.append((key, value, eid))
                else:
                    self._recent[rng.randrange(1000)] = (key, value, eid)
            keys.append(key)
            values.append(value)
            ids.append(eid)
        return keys, values, ids


def parse_mix(text: str, allowed: set[str] | None = None) -> dict[str, float]:
    """``a=0.5,b=0.5`` -> {a: 0.5, b: 0.5} (weights; they are normalised by the user)."""
    out: dict[str, float] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, weight = part.partition("=")
        if not sep:
            raise ValueError(f"{part!r}: expected NAME=WEIGHT")
        name = name.strip()
        if allowed is not None and name not in allowed:
            raise ValueError(f"{name!r} is not one of {sorted(allowed)}")
        out[name] = float(weight)
        if out[name] < 0:
            raise ValueError(f"{part!r}: weights must be >= 0")
    if not out or sum(out.values()) <= 0:
        raise ValueError(f"{text!r}: no positive weight")
    return out
