"""Quiet hours in the user's IANA timezone, across midnight and safe across DST changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

from streams.core.model import Preferences, to_ms

_DAY = timedelta(days=1)


@lru_cache(maxsize=1024)
def _zone(name: str) -> tzinfo | None:
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
        return None


def is_known_timezone(name: str) -> bool:
    return bool(name) and _zone(name) is not None


def zone(name: str) -> tzinfo:
    """The zone, or UTC for an unknown name (such preferences are rejected by validation)."""
    return (_zone(name) if name else None) or UTC


def quiet_until(prefs: Preferences | None, now_ms: int) -> int | None:
    """If ``now_ms`` is inside the user's quiet hours, the instant they end; else None."""
    if prefs is None or prefs.quiet_hours is None:
        return None
    qh = prefs.quiet_hours
    tz = zone(prefs.timezone)
    local = datetime.fromtimestamp(now_ms / 1000, tz)
    minute = local.hour * 60 + local.minute
    if not qh.contains(minute):
        return None
    # The next wall-clock end after now: today's, or tomorrow's in the evening part of a period
    # that spans midnight.
    return _next_local(local.date(), qh.end_minute % 1440, tz, now_ms)


def _next_local(day: date, minute: int, tz: tzinfo, after_ms: int) -> int:
    """First instant after ``after_ms`` showing wall time ``minute`` on ``day`` (or the next day).

    Wall times are built in the zone rather than by adding hours, so a DST change between now and
    the end moves the instant, not the wall time. A wall time repeated by a fall-back transition
    is tried at its first, then its second occurrence; one skipped by spring-forward is read with
    the offset before the change (02:30 becomes 03:30).
    """
    for _ in range(2):
        for fold in (0, 1):
            candidate = datetime(
                day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=tz, fold=fold
            )
            ms = to_ms(candidate)
            if ms > after_ms:
                return ms
        day += _DAY
    raise AssertionError("unreachable: a wall time recurs within two days")  # pragma: no cover
