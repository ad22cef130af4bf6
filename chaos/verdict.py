"""What arrived, checked against what must arrive: the verifier's judgement, pure (no I/O).

Four views of the run's deliveries are compared with the ledger's expected (user, channel, event)
arrivals: the delivery topics (what the router wrote), PostgreSQL's `delivery_log` (every
channel) and `inbox` (in-app), and the gateway (the provider stub's accepted requests, by
`Idempotency-Key`, for e-mail, SMS and push). In each view every expected arrival must be carried
by exactly one distinct `delivery_id`:

- **lost**: an expected arrival the view lacks;
- **doubled**: an arrival carried by two different deliveries (a redelivery that is not absorbed);
- **unexpected**: an arrival the rules do not produce (a muted category, a disabled channel...).

The same `delivery_id` seen more than once (a replayed event re-sent, a sink re-sending after a
restart) is what at-least-once allows and the sinks absorb: counted, not a failure. Also checked:
per user and channel, the gateway accepted deliveries in the order the router created them (their
order on the topic), nothing went to a dead-letter topic, and the lags drained in time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from chaos.ledger import Arrival

GATEWAY_CHANNELS = ("email", "sms", "push")


@dataclass(frozen=True)
class Seen:
    """One delivery as a view shows it. ``position`` orders a view's copies (topic offset, or
    the stub's request number); ``user`` and ``channel`` as the delivery names them; ``kind`` and
    ``body`` where the view has them (the topics)."""

    delivery_id: str
    user: str
    channel: str
    event_ids: tuple[str, ...]
    position: int = 0
    kind: str = ""
    body: str = ""


@dataclass
class Observed:
    """Everything the verifier read back after the run."""

    topics: list[Seen] = field(default_factory=list)
    delivery_log: list[Seen] = field(default_factory=list)
    inbox: list[Seen] = field(default_factory=list)
    gateway: list[Seen] = field(default_factory=list)  # accepted requests only
    gateway_attempts: int = 0  # every request the stub answered, failed ones included
    dead_letters: dict[str, int] = field(default_factory=dict)  # topic -> records of this run


@dataclass
class ViewCheck:
    name: str
    expected: int
    arrived: int
    lost: list[Arrival]
    doubled: dict[Arrival, set[str]]
    unexpected: list[Arrival]
    repeated: int  # copies of a delivery_id beyond its first: redelivered and absorbed

    @property
    def ok(self) -> bool:
        return not (self.lost or self.doubled or self.unexpected)


@dataclass
class Verdict:
    views: list[ViewCheck]
    out_of_order: list[tuple[str, str]]  # (user, channel) whose gateway order differs
    dead_letters: dict[str, int]
    drained: bool
    drain_s: float | None

    @property
    def lost(self) -> int:
        return sum(len(v.lost) for v in self.views)

    @property
    def doubled(self) -> int:
        return sum(len(v.doubled) for v in self.views)

    @property
    def unexpected(self) -> int:
        return sum(len(v.unexpected) for v in self.views)

    @property
    def dead_lettered(self) -> int:
        return sum(self.dead_letters.values())

    @property
    def ok(self) -> bool:
        return (all(v.ok for v in self.views) and not self.out_of_order
                and not self.dead_lettered and self.drained)

    def view(self, name: str) -> ViewCheck:
        return next(v for v in self.views if v.name == name)

    def problems(self, limit: int = 5) -> list[str]:
        """The first few failures of each kind, for people."""
        lines = []
        for v in self.views:
            lines += [f"{v.name}: lost {a}" for a in v.lost[:limit]]
            lines += [f"{v.name}: doubled {a} in {sorted(ids)}"
                      for a, ids in list(v.doubled.items())[:limit]]
            lines += [f"{v.name}: unexpected {a}" for a in v.unexpected[:limit]]
        lines += [f"gateway: out of order for {user} on {channel}"
                  for user, channel in self.out_of_order[:limit]]
        lines += [f"dead-lettered: {n} records on {topic}" for topic, n in self.dead_letters.items() if n]
        if not self.drained:
            lines.append("the lags did not drain, or arrivals were missing, within the bound")
        return lines


def check_view(name: str, seen: Iterable[Seen], expected: set[Arrival],
               channels: Iterable[str] | None = None) -> ViewCheck:
    """One view against the expected arrivals of its ``channels`` (None: every channel)."""
    wanted = expected if channels is None else {a for a in expected if a[1] in set(channels)}
    carriers: dict[Arrival, set[str]] = defaultdict(set)
    copies: dict[str, int] = defaultdict(int)
    for delivery in seen:
        copies[delivery.delivery_id] += 1
        for event_id in delivery.event_ids:
            carriers[(delivery.user, delivery.channel, event_id)].add(delivery.delivery_id)
    return ViewCheck(
        name=name, expected=len(wanted), arrived=len(wanted & carriers.keys()),
        lost=sorted(wanted - carriers.keys()),
        doubled={a: ids for a, ids in sorted(carriers.items()) if len(ids) > 1},
        unexpected=sorted(carriers.keys() - wanted),
        repeated=sum(n - 1 for n in copies.values()))


def out_of_order(topics: Iterable[Seen], gateway: Iterable[Seen]) -> list[tuple[str, str]]:
    """(user, channel) pairs whose deliveries the gateway first accepted in another order than
    the router created them (first appearance on the topic; a user's channel is one partition)."""
    created: dict[tuple[str, str], list[str]] = defaultdict(list)
    for d in sorted(topics, key=lambda s: s.position):
        ids = created[(d.user, d.channel)]
        if d.delivery_id not in ids:
            ids.append(d.delivery_id)
    accepted: dict[tuple[str, str], list[str]] = defaultdict(list)
    for d in sorted(gateway, key=lambda s: s.position):
        ids = accepted[(d.user, d.channel)]
        if d.delivery_id not in ids:
            ids.append(d.delivery_id)
    wrong = []
    for key, ids in sorted(accepted.items()):
        rank = {delivery_id: n for n, delivery_id in enumerate(created.get(key, []))}
        ranks = [rank[i] for i in ids if i in rank]
        if ranks != sorted(ranks):
            wrong.append(key)
    return wrong


def judge(expected: set[Arrival], observed: Observed, drained: bool,
          drain_s: float | None) -> Verdict:
    views = [
        check_view("topics", observed.topics, expected),
        check_view("delivery_log", observed.delivery_log, expected),
        check_view("inbox", observed.inbox, expected, ["in_app"]),
        check_view("gateway", observed.gateway, expected, GATEWAY_CHANNELS),
    ]
    return Verdict(views, out_of_order(observed.topics, observed.gateway),
                   dict(observed.dead_letters), drained, drain_s)
