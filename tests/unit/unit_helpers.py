"""Builders shared by the unit tests (imported by module name: pytest puts this dir on sys.path)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from streams.core.model import Channel, ChannelPreference, Event, Preferences, QuietHours, to_ms
from streams.core.routing import RouteResult, UserState, route
from streams.core.settings import RouterSettings

SECOND = 1_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
# Wednesday 2025-01-15 12:00 UTC: no DST anywhere near, mid-window for every default window.
T0 = to_ms(datetime(2025, 1, 15, 12, 0, tzinfo=ZoneInfo("UTC")))
S = RouterSettings()


def at(year: int, month: int, day: int, hour: int, minute: int = 0, tz: str = "UTC") -> int:
    """Epoch ms of a local wall time."""
    return to_ms(datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(tz)))


def event(event_id: str = "e1", user_id: str = "u1", category: str = "news", **kw) -> Event:
    kw.setdefault("occurred_at", T0 - SECOND)
    if "template" not in kw:
        kw.setdefault("title", f"title {event_id}")
        kw.setdefault("body", f"body {event_id}")
    return Event(event_id=event_id, user_id=user_id, category=category, **kw)


ADDRESSES = {
    Channel.EMAIL: "u1@example.com",
    Channel.SMS: "+4915100000000",
    Channel.PUSH: "device-token-1",
    Channel.IN_APP: None,
}


def cp(channel: Channel, enabled: bool = True, address: str | None = "", **kw) -> ChannelPreference:
    if address == "":
        address = ADDRESSES[channel]
    return ChannelPreference(channel, enabled, address, **kw)


def prefs(
    user_id: str = "u1",
    channels: list[ChannelPreference] | None = None,
    quiet: tuple[int, int] | None = None,
    **kw,
) -> Preferences:
    """Preferences with every channel enabled and addressed unless told otherwise."""
    if channels is None:
        channels = [cp(ch) for ch in Channel]
    return Preferences(
        user_id=user_id,
        channels={c.channel: c for c in channels},
        quiet_hours=None if quiet is None else QuietHours(*quiet),
        **kw,
    )


def only(*channels: Channel, **kw) -> Preferences:
    """Preferences with exactly these channels enabled (the rest explicitly disabled)."""
    return prefs(channels=[cp(ch, enabled=ch in channels) for ch in Channel], **kw)


def go(
    ev: Event,
    p: Preferences | None,
    state: UserState | None = None,
    now: int = T0,
    pos: tuple[int, int] | None = None,
    settings: RouterSettings = S,
) -> RouteResult:
    return route(ev, p, state if state is not None else UserState(), now, pos, settings)


def kinds(result) -> list[tuple[str, str, str]]:
    """(channel, kind, reason) of each delivery, for compact assertions."""
    return [(d.channel.key, d.kind.value, d.reason) for d in result.deliveries]


def limited(channel: Channel, limit: int, **kw) -> Preferences:
    """Only ``channel`` enabled, with a per-user throttle limit."""
    return prefs(
        channels=[cp(channel, throttle_limit=limit)]
        + [cp(ch, enabled=False) for ch in Channel if ch != channel],
        **kw,
    )
