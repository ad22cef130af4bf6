"""Building Delivery records: deterministic ids and rendered text."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from streams.core.model import Channel, Delivery, DeliveryKind, DigestItem, Event
from streams.core.routing.state import FLUSH_REASONS, MIXED, Hold
from streams.core.templates import render

REASON_IMMEDIATE = "immediate"
REASON_CRITICAL = "critical"
# Channels with little room: they carry an event's summary instead of its body when it has one.
SHORT_TEXT_CHANNELS = frozenset({Channel.SMS, Channel.PUSH})


def delivery_id(
    user_id: str, channel: Channel, kind: DeliveryKind, event_ids: Iterable[str]
) -> str:
    """Same user, channel, kind and set of events -> same id, so sinks can upsert on it."""
    # \x1f (unit separator) cannot be confused with content of the parts
    material = "\x1f".join((user_id, channel, kind, *sorted(event_ids)))  # StrEnums are str
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:32]


def fallback_delivery_id(user_id: str, channel: Channel, first_delivery_id: str) -> str:
    """The id of a chain's fallback on ``channel``: the same first delivery and channel give the
    same id (a fallback re-sent after a crash is absorbed by the sinks), and it never equals the
    id of a delivery of the event itself."""
    material = "\x1f".join((user_id, channel, "FALLBACK", first_delivery_id))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:32]


def render_event(event: Event) -> tuple[str, str]:
    """Pre-rendered title/body win; what is missing comes from the template."""
    title, body = event.title, event.body
    if title is None or body is None:
        t_title, t_body = render(event.template, event.data, event.category)
        title = t_title if title is None else title
        body = t_body if body is None else body
    return title, body


def text_for(event: Event, channel: Channel, text: tuple[str, str]) -> tuple[str, str]:
    """The rendered (title, body) as ``channel`` carries it: the summary as the body on SMS and
    push when the event has one (NotificationEvent v2)."""
    if event.summary is not None and channel in SHORT_TEXT_CHANNELS:
        return text[0], event.summary
    return text


def single(
    event: Event,
    user_id: str,
    channel: Channel,
    address: str | None,
    text: tuple[str, str],
    reason: str,
    now_ms: int,
) -> Delivery:
    ids = (event.event_id,)
    text = text_for(event, channel, text)
    return Delivery(
        delivery_id=delivery_id(user_id, channel, DeliveryKind.SINGLE, ids),
        user_id=user_id,
        channel=channel,
        address=address,
        kind=DeliveryKind.SINGLE,
        category=event.category,
        priority=event.priority,
        title=text[0],
        body=text[1],
        event_ids=ids,
        item_count=1,
        items=(),
        digest_key=event.digest_key,
        reason=reason,
        created_at=now_ms,
        first_occurred_at=event.occurred_at,
    )


def from_hold(hold: Hold, user_id: str, address: str | None, now_ms: int) -> Delivery:
    """A hold of one (rendered) event goes out as SINGLE, anything larger as DIGEST."""
    ids = tuple(hold.event_ids)
    if len(ids) == 1 and hold.items and hold.items[0].event_id == ids[0]:
        kind = DeliveryKind.SINGLE
        title, body = hold.items[0].title, hold.items[0].body
        items: tuple[DigestItem, ...] = ()
    else:
        kind = DeliveryKind.DIGEST
        title, body = digest_text(hold)
        items = tuple(hold.items)
    return Delivery(
        delivery_id=delivery_id(user_id, hold.channel, kind, ids),
        user_id=user_id,
        channel=hold.channel,
        address=address,
        kind=kind,
        category=hold.category,
        priority=hold.priority,
        title=title,
        body=body,
        event_ids=ids,
        item_count=len(ids),
        items=items,
        digest_key=hold.digest_key,
        reason=FLUSH_REASONS[hold.reason],
        created_at=now_ms,
        first_occurred_at=hold.first_occurred_at,
    )


def digest_text(hold: Hold) -> tuple[str, str]:
    """'5 new notifications in social.like' and the newest items, one per line."""
    n = hold.count
    noun = "notification" if n == 1 else "notifications"
    title = f"{n} new {noun}" if hold.category == MIXED else f"{n} new {noun} in {hold.category}"
    lines = [f"- {item.title}" for item in hold.items]
    if n > len(hold.items):
        lines.append(f"and {n - len(hold.items)} more")
    return title, "\n".join(lines)
