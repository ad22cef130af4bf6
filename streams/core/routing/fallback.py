"""Fallback chains: a delivery the recipient did not get is sent again on the next channel.

A category's chain (the user's own from the preferences, else the deployment's
``NOTIPIPE_FALLBACKS``; the most specific category wins) lists channels in turn. An event of the
category goes out at once on the first channel of the chain it may use now, and the chain's later
channels are kept back; a ``PendingFallback`` in the user's state then watches that delivery:

- a DELIVERED or OPENED receipt for it settles it: nothing more is sent;
- a BOUNCED or FAILED receipt, or its deadline passing, sends the event on the next channel, under
  the rules any delivery on that channel follows: a channel the user cannot get it on (muted,
  disabled, no address, not served) is skipped for the one after; quiet hours, a digest category
  or a full throttle window hold it, and it goes out with that hold, which ends the chain. A
  fallback sent at once is watched in turn while channels remain;
- a receipt for a delivery whose fallback already went is late: counted, nothing is sent.

A chain's first delivery that is held rather than sent at once (quiet hours, throttle, digest)
goes out with its hold, and starts no chain. A fallback's ``delivery_id`` comes from the first
delivery's id and its channel, so a fallback sent again after a crash has the same id.

Counters:
  ('fallback', 'watched')                      a chain's delivery went out and is watched
  ('fallback', 'cleared')                      a DELIVERED or OPENED receipt settled it
  ('fallback', 'bounced' | 'failed' | 'timeout')   what set a fallback off
  ('fallback', 'sent')                         a fallback delivery went out at once
  ('fallback', 'held')                         a fallback went into a hold on its channel
  ('fallback', 'exhausted')                    no channel left that may carry it
  ('fallback', 'expired')                      the event expired before its fallback
  ('fallback', 'first_held')                   a chain's first delivery was held: no chain
  ('receipt', 'delivered' | 'opened' | 'bounced' | 'failed')   every receipt, by status
  ('receipt', 'late')                          for a delivery whose fallback already went
  ('receipt', 'unmatched')                     for a delivery no fallback watches
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from streams.core.model import (
    Channel,
    ChannelPreference,
    Delivery,
    DeliveryKind,
    Event,
    FallbackChain,
    Preferences,
    Priority,
    Receipt,
    ReceiptStatus,
)
from streams.core.routing import holds, policy, throttle
from streams.core.routing.deliveries import fallback_delivery_id
from streams.core.routing.policy import category_prefixes
from streams.core.routing.quiet_hours import quiet_until
from streams.core.routing.state import (
    HOLD_DIGEST,
    HOLD_QUIET,
    HOLD_THROTTLE,
    PendingFallback,
    UserState,
)
from streams.core.settings import RouterSettings

TIMEOUT = "timeout"
WATCHED = ("fallback", "watched")
CLEARED = ("fallback", "cleared")
SENT = ("fallback", "sent")
HELD = ("fallback", "held")
EXHAUSTED = ("fallback", "exhausted")
EXPIRED = ("fallback", "expired")
FIRST_HELD = ("fallback", "first_held")
RECEIPT_LATE = ("receipt", "late")
RECEIPT_UNMATCHED = ("receipt", "unmatched")
_RECEIPT = {s: ("receipt", s.value.lower()) for s in ReceiptStatus}
_TRIGGERS = (ReceiptStatus.BOUNCED.value.lower(), ReceiptStatus.FAILED.value.lower(), TIMEOUT)
_TRIGGERED = {t: ("fallback", t) for t in _TRIGGERS}
REASONS = {t: f"fallback_{t}" for t in _TRIGGERS}  # Delivery.reason of a fallback


@dataclass(slots=True)
class ReceiptResult:
    state: UserState
    deliveries: list[Delivery] = field(default_factory=list)
    counters: Counter = field(default_factory=Counter)
    changed: bool = False  # state must be written back
    due_changed: bool = False  # re-read next_due_ms(state)


def chain_for(
    prefs: Preferences | None, category: str, settings: RouterSettings
) -> FallbackChain | None:
    """The category's chain: the user's most specific, else the deployment's; None when there is
    none, or the one that applies names fewer than two channels (the user turned it off)."""
    if prefs is not None and prefs.fallbacks:
        chain = _most_specific(prefs.fallbacks, category)
        if chain is not None:
            return chain if len(chain.channels) >= 2 else None
    if settings.fallbacks:
        return _most_specific(settings.fallbacks, category)
    return None


def _most_specific(chains: Mapping[str, FallbackChain], category: str) -> FallbackChain | None:
    for prefix in category_prefixes(category):
        chain = chains.get(prefix)
        if chain is not None:
            return chain
    return None


def plan(
    chain: FallbackChain,
    targets: Sequence[Channel],
    prefs: Preferences | None,
    user_id: str,
    category: str,
    mandatory: bool,
    settings: RouterSettings,
) -> tuple[Channel | None, tuple[Channel, ...]]:
    """(the channel the chain starts on, the channels kept back for fallbacks), or (None, ()) when
    fewer than two of the chain's channels are among the event's targets (an event restricted to
    some channels restricts its chain too). The chain starts on the first channel the user may
    get it on now; the ones before it are routed as usual (and dropped, with their reason)."""
    usable = [ch for ch in chain.channels if ch in targets]
    if len(usable) < 2:
        return None, ()
    for i, ch in enumerate(usable[:-1]):
        if policy.gate(ch, prefs, category, mandatory, user_id, settings)[2] is None:
            return ch, tuple(usable[i + 1:])
    return None, ()


def watch(
    state: UserState,
    sent: list[Delivery],
    first: Channel,
    later: tuple[Channel, ...],
    event: Event,
    text: tuple[str, str],
    timeout_ms: int,
    now_ms: int,
    counters: Counter,
) -> bool:
    """After routing: watch the chain's first delivery if it went out at once (returns True: the
    due time moved); if it was held, there is no chain."""
    for delivery in sent:
        if delivery.channel == first and delivery.kind == DeliveryKind.SINGLE:
            state.fallbacks[delivery.delivery_id] = PendingFallback(
                delivery_id=delivery.delivery_id, first_delivery_id=delivery.delivery_id,
                channel=first, remaining=list(later), due_at_ms=now_ms + timeout_ms,
                timeout_ms=timeout_ms, event_id=event.event_id, category=event.category,
                priority=event.priority, title=text[0], body=text[1],
                occurred_at=event.occurred_at, digest_key=event.digest_key,
                expires_at=event.expires_at)
            counters[WATCHED] += 1
            return True
    counters[FIRST_HELD] += 1
    return False


def on_receipt(
    state: UserState,
    prefs: Preferences | None,
    receipt: Receipt,
    now_ms: int,
    settings: RouterSettings,
) -> ReceiptResult:
    """Join a receipt with the user's pending fallbacks."""
    result = ReceiptResult(state)
    counters = result.counters
    counters[_RECEIPT[receipt.status]] += 1
    result.changed = forget_old(state, now_ms - settings.dedupe_retention_ms)
    pending = state.fallbacks.get(receipt.delivery_id)
    if pending is None:
        counters[RECEIPT_LATE if receipt.delivery_id in state.fell_back else RECEIPT_UNMATCHED] += 1
        return result
    result.changed = result.due_changed = True
    if receipt.status.confirms:
        del state.fallbacks[receipt.delivery_id]
        counters[CLEARED] += 1
    else:
        fire(state, prefs, pending, receipt.status.value.lower(), now_ms, settings,
             result.deliveries, counters)
    return result


def fire_due(
    state: UserState,
    prefs: Preferences | None,
    now_ms: int,
    settings: RouterSettings,
    sent: list[Delivery],
    counters: Counter,
) -> bool:
    """Send the next channel of every fallback whose deadline has passed; whether any had."""
    due = [p for p in state.fallbacks.values() if p.due_at_ms <= now_ms]
    for pending in due:
        fire(state, prefs, pending, TIMEOUT, now_ms, settings, sent, counters)
    forget_old(state, now_ms - settings.dedupe_retention_ms)
    return bool(due)


def is_due(state: UserState, now_ms: int) -> bool:
    return any(p.due_at_ms <= now_ms for p in state.fallbacks.values())


def forget_old(state: UserState, cutoff_ms: int) -> bool:
    """Forget fallbacks that went out before ``cutoff_ms``: a receipt for their delivery is no
    longer told apart as late. Whether any were forgotten."""
    fell_back = state.fell_back
    if not fell_back:
        return False
    old = [delivery_id for delivery_id, at in fell_back.items() if at < cutoff_ms]
    for delivery_id in old:
        del fell_back[delivery_id]
    return bool(old)


def fire(
    state: UserState,
    prefs: Preferences | None,
    pending: PendingFallback,
    trigger: str,
    now_ms: int,
    settings: RouterSettings,
    sent: list[Delivery],
    counters: Counter,
) -> None:
    """The watched delivery was not confirmed: the event on the next channel that may carry it."""
    del state.fallbacks[pending.delivery_id]
    state.fell_back[pending.delivery_id] = now_ms
    counters[_TRIGGERED[trigger]] += 1
    if pending.expires_at is not None and pending.expires_at <= now_ms:
        counters[EXPIRED] += 1
        return
    user_id, category = state.user_id, pending.category
    mandatory = policy.is_mandatory(category, settings)
    for i, ch in enumerate(pending.remaining):
        cp, address, drop = policy.gate(ch, prefs, category, mandatory, user_id, settings)
        if drop is not None:
            counters[drop] += 1
            continue
        assert cp is not None
        held = _hold_if_due(state, prefs, pending, ch, cp, now_ms, settings)
        if held is not None:
            counters[HELD] += 1
            counters[("held", held)] += 1
            return
        delivery = _delivery(pending, user_id, ch, address, REASONS[trigger], now_ms)
        sent.append(delivery)
        counters[SENT] += 1
        counters[("delivered", ch.key, "single")] += 1
        rest = pending.remaining[i + 1:]
        if rest:
            state.fallbacks[delivery.delivery_id] = _next_watch(pending, delivery, ch, rest, now_ms)
        return
    counters[EXHAUSTED] += 1


def _hold_if_due(
    state: UserState,
    prefs: Preferences | None,
    pending: PendingFallback,
    ch: Channel,
    cp: ChannelPreference,
    now_ms: int,
    settings: RouterSettings,
) -> str | None:
    """The rules a new delivery on ``ch`` follows, in ``route``'s order: critical goes at once;
    quiet hours, a digest category or a full throttle window hold it. Returns the hold's reason,
    or None: send it now (counted in the throttle window)."""
    if pending.priority == Priority.CRITICAL:
        return None
    event = _event(pending, state.user_id)
    text = (pending.title, pending.body)
    max_items = settings.digest_max_items
    quiet_end = quiet_until(prefs, now_ms)
    if quiet_end is not None:
        holds.add(state, ch, HOLD_QUIET, "", event, text, now_ms, quiet_end, max_items)
        return HOLD_QUIET
    if policy.wants_digest(prefs, pending.category, settings):
        group = pending.digest_key or pending.category
        holds.add(state, ch, HOLD_DIGEST, group, event, text, now_ms,
                  now_ms + settings.digest_window_ms, max_items)
        return HOLD_DIGEST
    admission, window_end = throttle.admit(
        state.throttle, ch, pending.event_id, policy.throttle_limit(cp, settings), now_ms,
        settings.throttle_window_ms)
    if admission == "send":
        return None
    holds.add(state, ch, HOLD_THROTTLE, "", event, text, now_ms, window_end, max_items)
    return HOLD_THROTTLE


def _event(pending: PendingFallback, user_id: str) -> Event:
    """The event as a hold keeps it (its text already rendered)."""
    return Event(event_id=pending.event_id, user_id=user_id, category=pending.category,
                 occurred_at=pending.occurred_at, priority=pending.priority, title=pending.title,
                 body=pending.body, digest_key=pending.digest_key, expires_at=pending.expires_at)


def _delivery(pending: PendingFallback, user_id: str, ch: Channel, address: str | None,
              reason: str, now_ms: int) -> Delivery:
    return Delivery(
        delivery_id=fallback_delivery_id(user_id, ch, pending.first_delivery_id),
        user_id=user_id,
        channel=ch,
        address=address,
        kind=DeliveryKind.SINGLE,
        category=pending.category,
        priority=pending.priority,
        title=pending.title,
        body=pending.body,
        event_ids=(pending.event_id,),
        item_count=1,
        items=(),
        digest_key=pending.digest_key,
        reason=reason,
        created_at=now_ms,
        first_occurred_at=pending.occurred_at,
        fallback_of=pending.first_delivery_id,
    )


def _next_watch(pending: PendingFallback, delivery: Delivery, ch: Channel,
                rest: list[Channel], now_ms: int) -> PendingFallback:
    return PendingFallback(
        delivery_id=delivery.delivery_id, first_delivery_id=pending.first_delivery_id,
        channel=ch, remaining=rest, due_at_ms=now_ms + pending.timeout_ms,
        timeout_ms=pending.timeout_ms, event_id=pending.event_id, category=pending.category,
        priority=pending.priority, title=pending.title, body=pending.body,
        occurred_at=pending.occurred_at, digest_key=pending.digest_key,
        expires_at=pending.expires_at)
