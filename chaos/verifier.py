"""The verifier, after Kafka's EosTestDriver: a known ledger offered at a steady rate while a fault
is injected and healed, then everything the pipeline did is read back and checked (verdict.py).

One scenario's run:

1. a ledger of its own users (ledger.py); their preferences are published first, and the run waits
   until the worker group has stored every one (its committed offset reaches the end of the
   preferences topic), so no event is joined before its user's preferences;
2. the load starts (load.py) at the run's rate: a fixed rate, or half of the measured maximum;
3. the scenario injects its fault and heals it, while the load goes on (scenarios.py);
4. the load goes on a little longer, then stops; the drain begins: until the router's and every
   sink's lag is zero and every expected arrival is in, within a bound;
5. the delivery topics, PostgreSQL and the gateway are read back and judged.

``measure_max_rate`` is the maximum: a burst of the ledger's events as fast as the producer can
send them, and the events per second from its first send until the router and every sink have
caught up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from chaos.ledger import Ledger, LedgerSpec
from chaos.load import Load
from chaos.observe import Mark, Observer
from chaos.pipeline import ChaosPipeline
from chaos.verdict import Observed, Verdict, judge
from streams.client.sdk import ClientSettings, NotificationClient

DRAIN_BOUND_S = 180.0  # from the end of the load (or of the quiet hours) to everything in
POLL_S = 2.0


@dataclass(frozen=True)
class Timing:
    warmup_s: float  # load before the fault
    fault_s: float  # how long the fault lasts: an outage, the spike
    after_s: float  # load after the fault is healed


@dataclass
class Context:
    """What a scenario works with while the load runs, and what it found."""

    pipeline: ChaosPipeline
    verifier: Verifier
    ledger: Ledger
    load: Load
    timing: Timing
    notes: list[str] = field(default_factory=list)  # for the report: what happened, with times
    checks: list[tuple[str, bool]] = field(default_factory=list)  # the scenario's own findings
    marks: dict[str, float] = field(default_factory=dict)  # wall-clock instants it noted

    def note(self, text: str) -> None:
        self.notes.append(text)

    def check(self, what: str, ok: bool) -> None:
        self.checks.append((what, ok))


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    short: Timing  # the pytest suite's variant
    long: Timing  # `notipipe chaos`
    fault: Callable[[Context], None]  # injects, waits, heals, while the load goes on
    quiet: bool = True  # users with quiet hours on at the start (their release adds to the drain)
    drain_bound_s: Callable[[Timing], float] = lambda timing: DRAIN_BOUND_S
    after: Callable[[Context, Observed], None] | None = None  # checks of its own on what was read
    brokers: int = 1  # the cluster it needs: the broker faults need three


@dataclass
class Outcome:
    scenario: str
    offered: int
    distinct: int
    rate: float
    load_s: float
    expected: int
    verdict: Verdict
    observed: Observed
    notes: list[str]
    checks: list[tuple[str, bool]]
    ledger: Ledger | None = field(default=None, repr=False)  # to read the run back again
    mark: Mark | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.verdict.ok and all(ok for _, ok in self.checks)


class Verifier:
    def __init__(self, pipeline: ChaosPipeline) -> None:
        self.pipeline = pipeline
        self.observer = Observer(pipeline)
        self._clients: dict[int, NotificationClient] = {}
        self._runs: dict[str, int] = {}  # scenario -> runs so far
        self.writer = 1  # the event version producers write; v2 once a scenario rolled it out

    def client(self, version: int) -> NotificationClient:
        """A producer writing NotificationEvent ``version``."""
        if version not in self._clients:
            stack = self.pipeline.stack
            self._clients[version] = NotificationClient(ClientSettings(
                stack.bootstrap_servers, stack.registry_url, self.pipeline.prefix, version))
        return self._clients[version]

    def ledger(self, name: str, spec: LedgerSpec) -> Ledger:
        """A ledger of users and event ids no earlier run of this pipeline had (a scenario run
        twice gets new ones: the same ids would be duplicates to the router)."""
        self._runs[name] = self._runs.get(name, 0) + 1
        suffix = "" if self._runs[name] == 1 else f"-{self._runs[name]}"
        return Ledger(f"{name}-{self.pipeline.run}{suffix}", spec, self.pipeline.rules)

    def publish_preferences(self, ledger: Ledger, timeout_s: float = 120) -> None:
        client = self.client(self.writer)
        for prefs in ledger.preferences:
            client.set_preferences(prefs)
        client.flush(60)
        deadline = time.monotonic() + timeout_s
        while not self.pipeline.preferences_routed():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the workers did not store {len(ledger.preferences)} "
                                   f"preferences within {timeout_s:.0f}s")
            self.pipeline.wait(0.5)

    def run(self, scenario: Scenario, rate: float, short: bool, users: int = 200) -> Outcome:
        """One scenario: its fault runs (injects, waits, heals) while the load goes on."""
        timing = scenario.short if short else scenario.long
        if scenario.brokers > 1:
            self.pipeline.brokers.require()
        # Quiet hours end at a minute boundary: the short variant takes the first one 15 s away.
        spec = LedgerSpec(users=users, quiet=scenario.quiet, quiet_for_s=15 if short else 40)
        ledger = self.ledger(scenario.name, spec)
        mark = self.observer.mark()
        self.publish_preferences(ledger)
        load = Load(ledger, {v: self.client(v) for v in (1, 2)}, rate, self.writer)
        context = Context(self.pipeline, self, ledger, load, timing)
        tap = self.observer.tap_gateway(ledger, mark)
        load.start()
        try:
            self.pipeline.wait(timing.warmup_s)
            scenario.fault(context)
            self.pipeline.wait(timing.after_s)
        finally:
            load.stop()
            self.writer = load.writer  # the next scenario's producers write what this one's did
        if ledger.quiet_until_ms is not None:
            quiet_users = sum(1 for p in ledger.preferences if p.quiet_hours)
            left_s = ledger.quiet_until_ms / 1000 - time.time()
            context.note(f"quiet hours of {quiet_users} users " + (
                f"end {left_s:.0f}s after the load: their held deliveries go out then"
                if left_s > 0 else "ended during the load: their held deliveries went out then"))
        try:
            drained, drain_s, observed = self.drain(ledger, mark, load.stopped_at,
                                                    scenario.drain_bound_s(timing))
        finally:
            tap.set()
        expected = ledger.expected()
        if scenario.after is not None:
            scenario.after(context, observed)
        return Outcome(scenario.name, load.sent, ledger.distinct_offered, load.offered_per_s,
                       load.stopped_at - load.started_at, len(expected),
                       judge(expected, observed, drained, drain_s), observed, context.notes,
                       context.checks, ledger, mark)

    def drain(self, ledger: Ledger, mark: Mark, since: float,
              bound_s: float = DRAIN_BOUND_S) -> tuple[bool, float | None, Observed]:
        """Wait until the lags are zero and every expected arrival is in every view (quiet hours
        still on count from their end). (drained, seconds from ``since``, what was read last)."""
        expected = ledger.expected()
        start = since
        if ledger.quiet_until_ms is not None:  # a wall-clock instant, as a monotonic one
            start = max(start, time.monotonic() + ledger.quiet_until_ms / 1000 - time.time())
        deadline = start + bound_s
        observed = Observed()
        while True:
            lags = self.pipeline.lags()
            if not any(lags.values()):
                observed = self.observer.read(ledger, mark)
                verdict = judge(expected, observed, True, None)
                if all(not v.lost for v in verdict.views):
                    return True, time.monotonic() - since, observed
            if time.monotonic() > deadline:
                if any(lags.values()):
                    observed = self.observer.read(ledger, mark)
                return False, None, observed
            self.pipeline.wait(POLL_S)

    def measure_max_rate(self, events: int, spec: LedgerSpec) -> tuple[float, Outcome]:
        """Events per second of a burst, end to end: from its first send until the router and
        every sink have caught up. The burst is a scenario of its own, checked like the others."""
        ledger = self.ledger("max", spec)
        mark = self.observer.mark()
        self.publish_preferences(ledger)
        client = self.client(self.writer)
        started = time.monotonic()
        for _ in range(events):
            client.send_event(ledger.draw(int(time.time() * 1000)))
        client.flush(120)
        deadline = started + DRAIN_BOUND_S
        while any(self.pipeline.lags().values()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the burst of {events} events did not drain in {DRAIN_BOUND_S:.0f}s")
            time.sleep(0.25)
        elapsed = time.monotonic() - started
        drained, drain_s, observed = self.drain(ledger, mark, time.monotonic())
        self.observer.collect_gateway(ledger, mark)
        verdict = judge(ledger.expected(), observed, drained, drain_s)
        outcome = Outcome("max-rate", len(ledger.offered), ledger.distinct_offered, events / elapsed,
                          elapsed, len(ledger.expected()), verdict, observed,
                          [f"burst of {events:,} events caught up after {elapsed:.1f}s"], [],
                          ledger, mark)
        return events / elapsed, outcome
