"""Dedupe by event_id within the retention window, telling duplicates from replays.

A repeated event_id read from a *different* (partition, offset) is a duplicate. The *same*
position means the worker crashed after storing state but before committing the offset, and the
event is being read again: it must be reprocessed to re-emit what may not have been sent.
"""

from __future__ import annotations

from typing import Literal

from streams.core.routing.seen import NO_POSITION, SeenEntry, SeenLog

Position = tuple[int, int]  # (source_partition, source_offset)
Verdict = Literal["new", "duplicate", "replay"]


def check(
    seen: SeenLog, event_id: str, position: Position | None, cutoff_ms: int
) -> tuple[Verdict, SeenEntry | None]:
    """Classify an event and return its entry if one is remembered (for a replay it holds the
    original seen_at; for a "new" event it is an expired one, or None)."""
    entry = seen.get(event_id)
    # The age test covers entries the head-only prune could not reach (clock skew).
    if entry is None or entry.seen_at_ms < cutoff_ms:
        return "new", entry
    if position is not None and entry.partition == position[0] and entry.offset == position[1]:
        return "replay", entry
    return "duplicate", entry


def remember(
    seen: SeenLog, event_id: str, position: Position | None, now_ms: int,
    *, known_absent: bool = False,
) -> None:
    """Remember the event as the newest entry, replacing an expired one. ``known_absent``: the
    caller's ``check`` just found no entry, so the log is not searched again."""
    partition, offset = position if position is not None else (NO_POSITION, NO_POSITION)
    seen.remember(event_id, partition, offset, now_ms, known_absent=known_absent)
