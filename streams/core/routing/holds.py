"""Pending holds (digest, quiet hours, throttle overflow): adding events and the due index."""

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


def _newness(item: DigestItem) -> tuple[int, str]:
    return item.occurred_at, item.event_id  # event_id breaks ties deterministically


def _insert_item(items: list[DigestItem], item: DigestItem, max_items: int) -> None:
    """Keep the newest ``max_items`` by occurred_at, newest first, whatever the arrival order."""
    key = _newness(item)
    if len(items) >= max_items and key <= _newness(items[-1]):
        return
    pos = 0
    while pos < len(items) and _newness(items[pos]) > key:
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
    """Earliest due time of the user's holds, for the flush timer's due index."""
    if not state.holds:
        return None
    return min(h.due_at_ms for h in state.holds.values())


def due_keys(state: UserState, now_ms: int) -> list[str]:
    return [k for k, h in state.holds.items() if h.due_at_ms <= now_ms]
