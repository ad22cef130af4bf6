"""Pending holds (digest, quiet hours, throttle overflow): adding events, and when the user's
holds and fallbacks fall due."""

from __future__ import annotations

from streams.core.model import Channel, DigestItem, Event
from streams.core.routing.deliveries import text_for
from streams.core.routing.state import MIXED, Hold, UserState, hold_key


def add(
    state: UserState,
    channel: Channel,
    reason: str,
    group: str,
    event: Event,
    text: tuple[str, str],
    now_ms: int,
    due_ms: int,
    max_items: int,
) -> bool:
    """Put the event in its hold, opening one if needed. Returns True if a hold was opened.

    An open hold keeps its due time: later events join without extending the window, so nothing
    waits longer than one window.
    """
    key = hold_key(channel, reason, group)
    title, body = text_for(event, channel, text)
    item = DigestItem(event.event_id, title, body, event.occurred_at)
    hold = state.holds.get(key)
    opened = hold is None
    if hold is None:
        hold = state.holds[key] = Hold(
            channel=channel,
            group=group,
            category=event.category,
            reason=reason,
            opened_at_ms=now_ms,
            due_at_ms=due_ms,
            event_ids=[event.event_id],
            items=[item],
            first_occurred_at=event.occurred_at,
            priority=event.priority,
            digest_key=event.digest_key,
        )
    else:
        hold.event_ids.append(event.event_id)
        _insert_item(hold.items, item, max_items)
        if hold.category != event.category:
            hold.category = MIXED
        if hold.digest_key != event.digest_key:
            hold.digest_key = None
        if event.occurred_at < hold.first_occurred_at:
            hold.first_occurred_at = event.occurred_at
        if event.priority.rank > hold.priority.rank:
            hold.priority = event.priority
    if event.expires_at is not None:
        hold.expiring[event.event_id] = event.expires_at
    return opened


def _insert_item(items: list[DigestItem], item: DigestItem, max_items: int) -> None:
    """Keep the newest ``max_items``, newest first: by occurred_at, and among equal ones by
    arrival (the order the router saw them, which a replay repeats). The item arriving now is
    the latest arrival, so it goes before every item that did not occur after it."""
    occurred = item.occurred_at
    if len(items) >= max_items and occurred < items[-1].occurred_at:
        return
    pos = 0
    while pos < len(items) and items[pos].occurred_at > occurred:
        pos += 1
    items.insert(pos, item)
    del items[max_items:]


def drop_expired(hold: Hold, now_ms: int) -> int:
    """Remove held events whose expires_at has passed; returns how many."""
    expired = {eid for eid, exp in hold.expiring.items() if exp <= now_ms}
    if not expired:
        return 0
    hold.event_ids = [eid for eid in hold.event_ids if eid not in expired]
    hold.items = [i for i in hold.items if i.event_id not in expired]
    for eid in expired:
        del hold.expiring[eid]
    return len(expired)


def next_due_ms(state: UserState) -> int | None:
    """Earliest due time of the user's holds and fallbacks, for the flush timer's due index."""
    due = min((h.due_at_ms for h in state.holds.values()), default=None)
    if state.fallbacks:
        fallback_due = min(f.due_at_ms for f in state.fallbacks.values())
        due = fallback_due if due is None else min(due, fallback_due)
    return due


def due_keys(state: UserState, now_ms: int) -> list[str]:
    return [k for k, h in state.holds.items() if h.due_at_ms <= now_ms]
