"""Dedupe by event_id within the retention window, telling duplicates from replays.

A repeated event_id read from a *different* (partition, offset) is a duplicate. The *same*
position means the worker crashed after storing state but before committing the offset, and the
event is being read again: it must be reprocessed to re-emit what may not have been sent.
"""

from __future__ import annotations

from typing import Literal

Position = tuple[int, int]  # (source_partition, source_offset)
Verdict = Literal["new", "duplicate", "replay"]

NO_POSITION = -1


def prune_seen(seen: dict[str, list[int]], cutoff_ms: int) -> bool:
    """Forget entries seen before ``cutoff_ms``. Returns whether anything was removed.

    ``seen`` is in processing order, so only the old head is scanned: O(removed), not O(size).
    """
    stale = []
    for event_id, entry in seen.items():
        if entry[2] >= cutoff_ms:
            break
        stale.append(event_id)
    for event_id in stale:
        del seen[event_id]
    return bool(stale)


def check(
    seen: dict[str, list[int]], event_id: str, position: Position | None, cutoff_ms: int
) -> tuple[Verdict, list[int] | None]:
    """Classify an event; for a replay also return its entry (holding the original seen_at)."""
    entry = seen.get(event_id)
    # The age test covers entries the head-only prune could not reach (clock skew).
    if entry is None or entry[2] < cutoff_ms:
        return "new", None
    if position is not None and entry[0] == position[0] and entry[1] == position[1]:
        return "replay", entry
    return "duplicate", entry


def remember(
    seen: dict[str, list[int]], event_id: str, position: Position | None, now_ms: int
) -> None:
    if event_id in seen:
        del seen[event_id]  # an expired entry: re-append to keep processing order
    if position is None:
        seen[event_id] = [NO_POSITION, NO_POSITION, now_ms]
    else:
        seen[event_id] = [position[0], position[1], now_ms]
