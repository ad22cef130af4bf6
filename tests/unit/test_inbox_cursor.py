"""Cursors (inbox/cursor.py): stable, exact, and ordered like the inbox."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from inbox.cursor import BadCursor, Cursor, iso, to_datetime
from inbox.notifications import Notification
from streams.core.model import Channel, Delivery, DeliveryKind, Priority


def test_a_cursor_survives_its_round_trip_exactly() -> None:
    at = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    cursor = Cursor.of(at, "d:with:colons")
    decoded = Cursor.decode(cursor.encode())
    assert decoded == cursor
    assert decoded.created_at == at  # to the microsecond: a query parameter must be exact
    assert "=" not in cursor.encode()


def test_cursors_order_by_time_then_by_id_byte_by_byte() -> None:
    at = datetime(2025, 3, 1, tzinfo=UTC)
    later = datetime(2025, 3, 1, 0, 0, 0, 1, tzinfo=UTC)
    assert Cursor.of(at, "b") < Cursor.of(at, "c") < Cursor.of(later, "a")
    assert Cursor.of(at, "Z") < Cursor.of(at, "a")  # "C" collation, as the index's


@pytest.mark.parametrize("text", ["", "!!!", "bm9jb2xvbg", "YWJjOmQ", "OjEyMw", "MTIzOg", "x" * 600,
                                  "LTE6ZA"])
def test_anything_else_is_a_bad_cursor(text: str) -> None:
    # "bm9jb2xvbg" is "nocolon", "YWJjOmQ" is "abc:d", "OjEyMw" is ":123", "MTIzOg" is "123:",
    # "LTE6ZA" is "-1:d"
    with pytest.raises(BadCursor):
        Cursor.decode(text)


def test_a_live_delivery_has_the_cursor_its_stored_row_will_have() -> None:
    delivery = Delivery("d1", "alice", Channel.IN_APP, "alice", DeliveryKind.SINGLE, "billing",
                        Priority.HIGH, "Invoice", "Ready", ("e1",), 1, (), None, "immediate",
                        1_740_830_400_123, 1_740_830_400_000)
    live = Notification.from_delivery(delivery)
    stored_created_at = datetime(2025, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)  # what the sink writes
    assert live.created_at == stored_created_at == to_datetime(1_740_830_400_123)
    assert live.cursor == Cursor.of(stored_created_at, "d1")
    shown = live.to_json()
    assert shown["created_at"] == iso(stored_created_at) == "2025-03-01T12:00:00.123Z"
    assert (shown["read"], shown["archived"], shown["priority"], shown["kind"]) == (
        False, False, "HIGH", "SINGLE")
