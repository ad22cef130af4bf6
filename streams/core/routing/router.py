"""The pure router: one event in, deliveries and a new per-user state out; and the flush of due
holds and fallbacks. No I/O and no clock reads: time comes in as ``now_ms``, so replays and tests
are exact. Fallback chains and receipts: ``fallback``.

``state`` is mutated in place (no copies on the hot path) and returned in the result. The caller
stores it when ``changed`` is true, and re-reads ``next_due_ms(state)`` when ``holds_changed``
(holds or fallbacks).

Counters (a ``collections.Counter``; events are counted once per channel where a channel applies):
  ('dropped', 'duplicate' | 'expired')                     per event
  ('dropped', 'muted' | 'channel_disabled' | 'no_address' | 'channel_not_served')
                                                           per event and channel (route and flush)
  ('dropped', 'no_channel')                                per event with no channel to consider
  ('held', 'digest' | 'quiet_hours' | 'throttle')          per event and channel put in a hold
  ('folded', 'digest' | 'quiet_hours' | 'throttle')        per event that went out inside a DIGEST
  ('delivered', <channel>, 'single' | 'digest')            per Delivery; channel lower-case
  ('postponed', 'quiet_hours')                             per due hold moved to the quiet end
  ('replayed', 'same_position')                            per event re-read after a crash
  ('fallback', ...), ('receipt', ...)                      see ``fallback``
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from streams.core.model import (
    Channel,
    Delivery,
    DeliveryKind,
    Event,
    Preferences,
    Priority,
)
from streams.core.routing import dedupe, deliveries, fallback, holds, policy, throttle
from streams.core.routing.dedupe import Position
from streams.core.routing.policy import gate
from streams.core.routing.quiet_hours import quiet_until
from streams.core.routing.state import HOLD_DIGEST, HOLD_QUIET, HOLD_THROTTLE, MIXED, UserState, hold_key
from streams.core.settings import RouterSettings

DROPPED_DUPLICATE = ("dropped", "duplicate")
DROPPED_EXPIRED = ("dropped", "expired")
DROPPED_NO_CHANNEL = ("dropped", "no_channel")
POSTPONED_QUIET = ("postponed", "quiet_hours")
REPLAYED = ("replayed", "same_position")
_HELD = {r: ("held", r) for r in (HOLD_DIGEST, HOLD_QUIET, HOLD_THROTTLE)}
_FOLDED = {r: ("folded", r) for r in (HOLD_DIGEST, HOLD_QUIET, HOLD_THROTTLE)}
_DELIVERED = {
    (ch, kind): ("delivered", ch.key, kind.value.lower()) for ch in Channel for kind in DeliveryKind
}

_DEFAULT_SETTINGS = RouterSettings()


@dataclass(slots=True)
class RouteResult:
    state: UserState
    deliveries: list[Delivery] = field(default_factory=list)
    counters: Counter = field(default_factory=Counter)
    changed: bool = False  # state must be written back
    holds_changed: bool = False  # the due time may have moved


@dataclass(slots=True)
class FlushResult:
    state: UserState
    deliveries: list[Delivery] = field(default_factory=list)
    counters: Counter = field(default_factory=Counter)
    changed: bool = False


def route(
    event: Event,
    prefs: Preferences | None,
    state: UserState,
    now_ms: int,
    position: Position | None = None,
    settings: RouterSettings = _DEFAULT_SETTINGS,
) -> RouteResult:
    """Route one validated event (see ``validation.validate``) for ``event.user_id``.

    ``prefs`` None means the user has no preferences: configured defaults apply. ``position`` is
    the event's (partition, offset); it tells a replay after a crash (same position: reprocess,
    same outputs, no double counting) from a duplicate (other position: drop).
    """
    result = RouteResult(state)
    counters = result.counters
    if not state.user_id:
        state.user_id = event.user_id
    cutoff = now_ms - settings.dedupe_retention_ms
    result.changed = state.seen.prune(cutoff)
    result.changed |= throttle.prune_windows(state.throttle, now_ms, settings.throttle_window_ms)
    if state.fell_back:
        result.changed |= fallback.forget_old(state, cutoff)

    verdict, entry = dedupe.check(state.seen, event.event_id, position, cutoff)
    if verdict == "duplicate":
        counters[DROPPED_DUPLICATE] += 1
        return result
    replay = verdict == "replay"
    if replay:
        counters[REPLAYED] += 1
        now_ms = entry.seen_at_ms  # decide as the first pass did, so outputs are identical
    else:
        dedupe.remember(state.seen, event.event_id, position, now_ms, known_absent=entry is None)
        result.changed = True

    if event.expires_at is not None and event.expires_at <= now_ms:
        counters[DROPPED_EXPIRED] += 1
        return result

    targets = policy.target_channels(event, prefs, settings)
    if not targets:
        counters[DROPPED_NO_CHANNEL] += 1
        return result

    user_id = event.user_id
    category = event.category
    mandatory = policy.is_mandatory(category, settings)
    critical = event.priority == Priority.CRITICAL
    chain_first: Channel | None = None
    chain_later: tuple[Channel, ...] = ()
    chain_timeout = 0
    # Without a chain configured, an event pays a few truth tests and no more (the hot path).
    if settings.fallbacks or (prefs is not None and prefs.fallbacks):
        chain = fallback.chain_for(prefs, category, settings)
        if chain is not None:
            chain_first, chain_later = fallback.plan(chain, targets, prefs, user_id, category,
                                                     mandatory, settings)
            chain_timeout = chain.timeout_ms or settings.fallback_timeout_ms
            if chain_later:  # kept back for the fallbacks
                targets = [ch for ch in targets if ch not in chain_later]
    text: tuple[str, str] | None = None
    quiet_checked, quiet_end = False, None  # looked up once, only if a channel needs it
    digest: bool | None = None

    for ch in targets:
        cp, address, drop = gate(ch, prefs, category, mandatory, user_id, settings)
        if drop is not None:
            counters[drop] += 1
            continue
        if text is None:
            text = deliveries.render_event(event)

        if critical:
            _deliver(
                result,
                deliveries.single(
                    event, user_id, ch, address, text, deliveries.REASON_CRITICAL, now_ms
                ),
            )
            continue

        if not quiet_checked:
            quiet_checked, quiet_end = True, quiet_until(prefs, now_ms)
        if quiet_end is not None:
            reason, group, due = HOLD_QUIET, "", quiet_end
        else:
            if digest is None:
                digest = policy.wants_digest(prefs, category, settings)
            if digest:
                group = event.digest_key or category
                reason, due = HOLD_DIGEST, now_ms + settings.digest_window_ms
            else:
                if replay and _in_hold(state, ch, HOLD_THROTTLE, event.event_id):
                    continue
                admission, window_end = throttle.admit(
                    state.throttle,
                    ch,
                    event.event_id,
                    policy.throttle_limit(cp, settings),
                    now_ms,
                    settings.throttle_window_ms,
                    replay,
                )
                if admission == "send":
                    result.changed |= not replay  # a replay finds its count already there
                    _deliver(
                        result,
                        deliveries.single(
                            event, user_id, ch, address, text, deliveries.REASON_IMMEDIATE, now_ms
                        ),
                    )
                    continue
                if admission == "skip":
                    continue
                reason, group, due = HOLD_THROTTLE, "", window_end

        # A replayed event that belongs in a hold was put there (or flushed) on its first pass.
        if replay:
            continue
        holds.add(state, ch, reason, group, event, text, now_ms, due, settings.digest_max_items)
        counters[_HELD[reason]] += 1
        result.holds_changed = True

    # A replayed event's chain was started (and is watched, or settled) on its first pass.
    if chain_first is not None and not replay and text is not None:
        result.holds_changed |= fallback.watch(state, result.deliveries, chain_first, chain_later,
                                               event, text, chain_timeout, now_ms, counters)
    result.changed |= result.holds_changed
    return result


def flush_due(
    state: UserState,
    prefs: Preferences | None,
    now_ms: int,
    settings: RouterSettings = _DEFAULT_SETTINGS,
) -> FlushResult:
    """Send every hold that is due, re-checking the user's current preferences, and the next
    channel of every fallback whose deadline has passed.

    Due during quiet hours: postponed to their end (unless critical). One rendered event: SINGLE;
    more: one DIGEST with a summary, the newest items and every event id.
    """
    result = FlushResult(state)
    due = holds.due_keys(state, now_ms)
    fallbacks_due = bool(state.fallbacks) and fallback.is_due(state, now_ms)
    if not due and not fallbacks_due:
        return result
    result.changed = True
    counters = result.counters
    uid = state.user_id
    quiet_checked, quiet_end = False, None
    for key in due:
        hold = state.holds[key]
        # Preferences may have changed since the hold opened: check again, use today's address.
        # A hold of mixed categories has no single category to mute.
        skip_mute = hold.category == MIXED or policy.is_mandatory(hold.category, settings)
        _, address, drop = gate(hold.channel, prefs, hold.category, skip_mute, uid, settings)
        if drop is not None:
            counters[drop] += hold.count
            del state.holds[key]
            continue

        expired = holds.drop_expired(hold, now_ms)
        if expired:
            counters[DROPPED_EXPIRED] += expired
            if not hold.event_ids:
                del state.holds[key]
                continue

        if hold.priority != Priority.CRITICAL:
            if not quiet_checked:
                quiet_checked, quiet_end = True, quiet_until(prefs, now_ms)
            if quiet_end is not None:
                hold.due_at_ms = quiet_end
                counters[POSTPONED_QUIET] += 1
                continue

        delivery = deliveries.from_hold(hold, uid, address, now_ms)
        del state.holds[key]
        if delivery.kind == DeliveryKind.DIGEST:
            counters[_FOLDED[hold.reason]] += delivery.item_count
        _deliver(result, delivery)
    if fallbacks_due:  # after the holds: a fallback held now joins a hold due later
        fallback.fire_due(state, prefs, now_ms, settings, result.deliveries, counters)
    return result


def next_due_ms(state: UserState) -> int | None:
    """Earliest due time of the user's holds (None: nothing pending)."""
    return holds.next_due_ms(state)


def _in_hold(state: UserState, ch: Channel, reason: str, event_id: str) -> bool:
    hold = state.holds.get(hold_key(ch, reason, ""))
    return hold is not None and event_id in hold.event_ids


def _deliver(result: RouteResult | FlushResult, delivery: Delivery) -> None:
    result.deliveries.append(delivery)
    result.counters[_DELIVERED[delivery.channel, delivery.kind]] += 1
