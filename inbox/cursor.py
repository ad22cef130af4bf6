"""Cursors: a stable position in a user's inbox, newest first.

Notifications are ordered by (created_at, delivery_id), both fixed once a delivery is made, so a
page boundary never moves when rows arrive or are marked read (OFFSET would skip or repeat rows).
A cursor is that pair, opaque to clients: base64url of `<created_at in µs>:<delivery_id>`
(microseconds: the precision of PostgreSQL's timestamptz and of Python's datetime, so a cursor
is exact). The same cursor is the SSE event id of the live feed, so a reconnecting client resumes
where it stopped.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
MAX_LENGTH = 512


class BadCursor(ValueError):
    """Not a cursor this service made."""


@dataclass(frozen=True, order=True)
class Cursor:
    """Orders like the inbox: a greater cursor is a newer notification."""

    created_at_us: int
    delivery_id: str

    @classmethod
    def of(cls, created_at: datetime, delivery_id: str) -> Cursor:
        return cls((created_at - _EPOCH) // _ONE_US, delivery_id)

    def encode(self) -> str:
        raw = f"{self.created_at_us}:{self.delivery_id}".encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        if not text or len(text) > MAX_LENGTH:
            raise BadCursor("a cursor is a non-empty string from an earlier answer")
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        except (binascii.Error, ValueError):
            raise BadCursor(f"{text!r} is not a cursor from this service") from None
        micros, sep, delivery_id = raw.partition(":")
        if not sep or not delivery_id or not micros.isdigit() or not micros.isascii():
            raise BadCursor(f"{text!r} is not a cursor from this service")
        return cls(int(micros), delivery_id)

    @property
    def created_at(self) -> datetime:
        """The exact instant, for timestamptz query parameters."""
        return _EPOCH + self.created_at_us * _ONE_US


def to_datetime(millis: int) -> datetime:
    """An Avro timestamp-millis as an aware datetime, exactly."""
    return _EPOCH + timedelta(milliseconds=millis)


def iso(value: datetime | None) -> str | None:
    """UTC ISO-8601 with milliseconds and a Z, as every timestamp of the API."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
