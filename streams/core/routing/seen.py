"""The event ids a user's state remembers for dedupe, kept as one string.

A user's state is decoded, changed and re-encoded whole for every event, and the seen ids are most
of it: 24 h of them by default. Held as a dict of ``[partition, offset, seen_at]`` lists they
would be five Python objects per id to build on every read, walk on every write (serializing them
took 10 of 14 µs per state) and for the garbage collector to scan while cached. As one string they
are one object: JSON copies it, a lookup is a substring search in C, an append is a copy.

Layout: entries in processing order, each ``" <id>,<partition>,<offset>,<seen_at_ms>"``. An id
holding a space, a comma or ``%`` is percent-encoded, so an id never contains a separator and
``" <id>,"`` can only match the start of that id's entry; a plain id never contains ``%``, so the
encoded form of one id cannot equal the plain form of another.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import quote

NO_POSITION = -1  # partition and offset of an event routed without a position


class SeenEntry(NamedTuple):
    partition: int
    offset: int
    seen_at_ms: int


def _escape(event_id: str) -> str:
    if " " in event_id or "," in event_id or "%" in event_id:
        return quote(event_id, safe="")
    return event_id


def _needle(escaped_id: str) -> str:
    """What only the start of that id's entry matches."""
    return f" {escaped_id},"


def _parse(entry: str) -> SeenEntry:
    """``entry`` is one entry without its leading space and id: ``"<p>,<o>,<t>"``."""
    partition, offset, seen_at = entry.split(",")
    return SeenEntry(int(partition), int(offset), int(seen_at))


class SeenLog:
    """Remembered event ids, oldest first. ``text`` is the stored form (see the module doc)."""

    __slots__ = ("text",)

    def __init__(self, text: str = "") -> None:
        self.text = text

    def __bool__(self) -> bool:
        return bool(self.text)

    def __len__(self) -> int:
        return self.text.count(" ")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SeenLog) and other.text == self.text

    def __repr__(self) -> str:
        return f"SeenLog({len(self)} ids)"

    def get(self, event_id: str) -> SeenEntry | None:
        text = self.text
        needle = _needle(_escape(event_id))
        start = text.find(needle)
        if start < 0:
            return None
        start += len(needle)
        end = text.find(" ", start)
        return _parse(text[start:end] if end >= 0 else text[start:])

    def remember(self, event_id: str, partition: int, offset: int, seen_at_ms: int,
                 known_absent: bool = False) -> None:
        """Append the id as the newest entry, dropping an older entry of the same id.
        ``known_absent`` (the caller's ``get`` just found none) skips looking for one."""
        escaped = _escape(event_id)
        text = self.text
        start = -1 if known_absent else text.find(_needle(escaped))
        if start >= 0:
            end = text.find(" ", start + 1)
            text = text[:start] + (text[end:] if end >= 0 else "")
        self.text = f"{text} {escaped},{partition},{offset},{seen_at_ms}"

    def prune(self, cutoff_ms: int) -> bool:
        """Forget the oldest entries seen before ``cutoff_ms``; whether any were.

        Entries are in processing order, so only the old head is read: O(removed), not O(size).
        """
        text = self.text
        size = len(text)
        head = 0
        while head < size:
            end = text.find(" ", head + 1)
            if end < 0:
                end = size
            if int(text[text.rindex(",", head, end) + 1:end]) >= cutoff_ms:
                break
            head = end
        if head == 0:
            return False
        self.text = text[head:]
        return True

    def ids(self) -> list[str]:
        """Oldest first, as stored (percent-encoded where needed); for tests and tools."""
        return [entry.split(",", 1)[0] for entry in self.text.split(" ")[1:]]

    @classmethod
    def from_entries(cls, entries: dict[str, list[int]]) -> SeenLog:
        """From the version-1 state's ``{event_id: [partition, offset, seen_at]}``, in order."""
        return cls("".join(f" {_escape(event_id)},{partition},{offset},{seen_at}"
                           for event_id, (partition, offset, seen_at) in entries.items()))
