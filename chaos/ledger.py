"""The known ledger of a chaos run: users with preferences, the events offered to them, and the
deliveries the rules say must come out of it.

Every user gets preferences before the first event, in one of a few profiles, so that every rule
is at work under the load: immediate deliveries, digests (the digest categories), throttle
overflow (a per-user limit of 2 per window on e-mail), quiet hours (active from the start of the
run for a while), a muted category, SMS with its own limit. Events are drawn deterministically
for a seed: a category mix with CRITICAL logins, some events restricted to in-app, some carrying
the v2 `summary`, and a share of repeats (the same `event_id` sent again, as a producer retry
would). ``expected`` runs the pure rules (`streams.core.routing`) over the events in the order
they were sent and flushes every hold: the set of (user, channel, event) it yields does not
depend on timing (when a digest closes changes how events are grouped, never whether they go
out), so it is what every sink must show, each in exactly one delivery.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from streams.core.model import (
    Channel,
    ChannelPreference,
    Event,
    Preferences,
    Priority,
    QuietHours,
)
from streams.core.routing import UserState, flush_due, next_due_ms, route
from streams.core.settings import RouterSettings

Arrival = tuple[str, str, str]  # (user_id, channel key, event_id)

PROFILES = ("plain", "plain", "plain", "plain", "push", "muted", "sms", "throttled", "throttled",
            "quiet")
# category -> (weight, priority)
CATEGORIES = {
    "social.like": (0.25, Priority.NORMAL),  # a digest category by default
    "social.comment": (0.15, Priority.NORMAL),
    "message.new": (0.25, Priority.HIGH),
    "order.shipped": (0.10, Priority.LOW),
    "billing.invoice": (0.10, Priority.NORMAL),  # mandatory: a muted user still gets it
    "security.login": (0.15, Priority.CRITICAL),  # bypasses throttle, digests and quiet hours
}
REPEAT_SHARE = 0.03
IN_APP_ONLY_SHARE = 0.10
SUMMARY_SHARE = 0.30


@dataclass(frozen=True)
class LedgerSpec:
    users: int = 200
    seed: int = 7
    quiet: bool = True  # give some users quiet hours that are on when the run starts
    quiet_for_s: float = 40.0  # ...and end at the first minute boundary at least this far away


@dataclass
class Ledger:
    """The run's users and everything offered to them, in the order it was sent."""

    name: str  # user ids start with it: the sinks' rows and requests of this run are found by it
    spec: LedgerSpec
    settings: RouterSettings
    preferences: list[Preferences] = field(default_factory=list)
    offered: list[Event] = field(default_factory=list)
    quiet_until_ms: int | None = None
    _rng: random.Random = field(init=False)
    _seq: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.spec.seed)
        self.preferences = self._build_preferences(int(time.time() * 1000))

    @property
    def user_prefix(self) -> str:
        return f"{self.name}-u"

    def user(self, index: int) -> str:
        return f"{self.user_prefix}{index:05d}"

    def owns(self, user_id: str) -> bool:
        return user_id.startswith(self.user_prefix)

    def _build_preferences(self, now_ms: int) -> list[Preferences]:
        out = []
        quiet = self._quiet_period(now_ms) if self.spec.quiet else None
        for index in range(self.spec.users):
            uid = self.user(index)
            profile = PROFILES[index % len(PROFILES)]
            if profile == "quiet" and quiet is None:
                profile = "plain"
            email = ChannelPreference(Channel.EMAIL, True, f"{uid}@example.com",
                                      throttle_limit=2 if profile == "throttled" else None)
            channels = {Channel.IN_APP: ChannelPreference(Channel.IN_APP), Channel.EMAIL: email}
            if profile == "push":
                channels[Channel.PUSH] = ChannelPreference(Channel.PUSH, True, f"token-{uid}")
            if profile == "sms":
                channels[Channel.EMAIL] = ChannelPreference(Channel.EMAIL, False)
                channels[Channel.SMS] = ChannelPreference(Channel.SMS, True, f"+49151{index:07d}",
                                                          throttle_limit=3)
            out.append(Preferences(
                user_id=uid, channels=channels,
                muted_categories=frozenset({"social"}) if profile == "muted" else frozenset(),
                quiet_hours=quiet if profile == "quiet" else None, timezone="UTC",
                updated_at=now_ms))
        return out

    def _quiet_period(self, now_ms: int) -> QuietHours:
        """Quiet from the current minute (UTC) to the first minute boundary at least
        ``quiet_for_s`` ahead: holds that must wait, and a release within the run."""
        now = datetime.fromtimestamp(now_ms / 1000, UTC)
        minute = now.hour * 60 + now.minute
        ends_in_s = 60 - now.second - now.microsecond / 1e6
        minutes = 1
        while ends_in_s < self.spec.quiet_for_s:
            ends_in_s += 60
            minutes += 1
        self.quiet_until_ms = now_ms + int(ends_in_s * 1000)
        return QuietHours(minute, (minute + minutes) % 1440)

    # -- the events ---------------------------------------------------------------------------
    def draw(self, now_ms: int) -> Event:
        """The next event to offer (recorded as offered): a new one, or now and then a repeat."""
        rng = self._rng
        if self.offered and rng.random() < REPEAT_SHARE:
            event = rng.choice(self.offered)
        else:
            event = self._new_event(now_ms)
        self.offered.append(event)
        return event

    def _new_event(self, now_ms: int) -> Event:
        rng = self._rng
        self._seq += 1
        category = rng.choices(list(CATEGORIES), [w for w, _ in CATEGORIES.values()])[0]
        user = self.user(rng.randrange(self.spec.users))
        return Event(
            event_id=f"{self.name}-e{self._seq:07d}", user_id=user, category=category,
            occurred_at=now_ms, priority=CATEGORIES[category][1],
            title=f"{category} #{self._seq}", body=f"Event {self._seq} of {self.name} for {user}.",
            channels=(Channel.IN_APP,) if rng.random() < IN_APP_ONLY_SHARE else None,
            digest_key=f"post-{rng.randrange(5)}" if category == "social.like" and rng.random() < 0.5
            else None,
            summary=f"#{self._seq} in short" if rng.random() < SUMMARY_SHARE else None,
            source="notipipe-chaos")

    @property
    def distinct_offered(self) -> int:
        return len({e.event_id for e in self.offered})

    # -- what the rules say must arrive ---------------------------------------------------------
    def expected(self) -> set[Arrival]:
        """Every (user, channel, event) the rules deliver, now or in a digest."""
        prefs = {p.user_id: p for p in self.preferences}
        states: dict[str, UserState] = {}
        arrivals: set[Arrival] = set()
        # Each send is a record of its own: a repeat is a duplicate, not a replay.
        for position, event in enumerate(self.offered):
            state = states.setdefault(event.user_id, UserState())
            result = route(event, prefs.get(event.user_id), state, event.occurred_at,
                           (0, position), self.settings)
            arrivals.update(_arrivals(result.deliveries))
        for user, state in states.items():
            for delivery in _flush_everything(state, prefs.get(user), self.settings):
                arrivals.update(_arrivals([delivery]))
        return arrivals


def _flush_everything(state: UserState, prefs: Preferences | None,
                      settings: RouterSettings) -> Iterator:
    """Every hold flushed, each when it falls due (quiet hours postpone some: later)."""
    while (due := next_due_ms(state)) is not None:
        yield from flush_due(state, prefs, due, settings).deliveries


def _arrivals(deliveries: list) -> Iterator[Arrival]:
    for delivery in deliveries:
        for event_id in delivery.event_ids:
            yield (delivery.user_id, delivery.channel.key, event_id)
