"""A notification as the API and the feed show it: an `inbox` row, or an in-app Delivery on its way
to becoming one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from inbox.cursor import Cursor, iso, to_datetime
from streams.core.model import Delivery

# The inbox columns the service reads, in this order (store.py's SELECTs).
COLUMNS = ("delivery_id", "kind", "category", "priority", "title", "body", "item_count",
           "digest_key", "created_at", "read_at", "archived_at")


@dataclass(frozen=True)
class Notification:
    delivery_id: str
    kind: str
    category: str
    priority: str
    title: str
    body: str
    item_count: int
    digest_key: str | None
    created_at: datetime
    read_at: datetime | None = None
    archived_at: datetime | None = None

    @property
    def cursor(self) -> Cursor:
        return Cursor.of(self.created_at, self.delivery_id)

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Notification:
        return cls(*row)

    @classmethod
    def from_delivery(cls, delivery: Delivery) -> Notification:
        """What the inbox row of this delivery will hold once the sink has written it."""
        return cls(delivery.delivery_id, str(delivery.kind), delivery.category, str(delivery.priority),
                   delivery.title, delivery.body, delivery.item_count, delivery.digest_key,
                   to_datetime(delivery.created_at))

    def to_json(self) -> dict[str, Any]:
        return {
            "delivery_id": self.delivery_id,
            "kind": self.kind,
            "category": self.category,
            "priority": self.priority,
            "title": self.title,
            "body": self.body,
            "item_count": self.item_count,
            "digest_key": self.digest_key,
            "created_at": iso(self.created_at),
            "read": self.read_at is not None,
            "read_at": iso(self.read_at),
            "archived": self.archived_at is not None,
            "archived_at": iso(self.archived_at),
            "cursor": self.cursor.encode(),
        }
