"""The `inbox` table, as the service reads and marks it.

The service needs SELECT on `inbox` and UPDATE of `read_at` and `archived_at`, nothing else: rows
are written by the JDBC sink alone. Every statement names the user, so one user's request can
never read or change another's rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from psycopg_pool import AsyncConnectionPool

from inbox.cursor import Cursor
from inbox.notifications import COLUMNS, Notification

_SELECT = f"SELECT {', '.join(COLUMNS)} FROM inbox"
# Newest first by the cursor's order; ids compare byte by byte (the index has the same collation).
_NEWEST_FIRST = 'ORDER BY created_at DESC, delivery_id COLLATE "C" DESC'
_OLDEST_FIRST = 'ORDER BY created_at, delivery_id COLLATE "C"'
_BEFORE = '(created_at, delivery_id COLLATE "C") < (%(at)s, %(id)s)'
_AFTER = '(created_at, delivery_id COLLATE "C") > (%(at)s, %(id)s)'
_UNTIL = '(created_at, delivery_id COLLATE "C") <= (%(at)s, %(id)s)'


class Shelf(StrEnum):
    """Which notifications a page lists."""

    INBOX = "inbox"  # not archived
    ARCHIVED = "archived"
    ALL = "all"


_SHELF_FILTER = {Shelf.INBOX: "AND archived_at IS NULL", Shelf.ARCHIVED: "AND archived_at IS NOT NULL",
                 Shelf.ALL: ""}


@dataclass(frozen=True)
class Page:
    items: list[Notification]
    next_cursor: Cursor | None  # None: this was the last page


class InboxStore:
    def __init__(self, dsn: str, max_connections: int) -> None:
        self.pool = AsyncConnectionPool(dsn, min_size=1, max_size=max_connections, open=False,
                                        kwargs={"autocommit": True}, name="inbox")

    async def open(self, timeout_s: float = 20) -> None:
        await self.pool.open(wait=True, timeout=timeout_s)

    async def close(self) -> None:
        await self.pool.close()

    async def page(self, user_id: str, before: Cursor | None, limit: int, shelf: Shelf) -> Page:
        """Up to `limit` notifications older than `before` (None: the newest), newest first."""
        where = f"WHERE user_id = %(user)s {_SHELF_FILTER[shelf]}"
        if before is not None:
            where += f" AND {_BEFORE}"
        rows = await self._fetch(f"{_SELECT} {where} {_NEWEST_FIRST} LIMIT %(limit)s",
                                 {"user": user_id, "limit": limit + 1, **_params(before)})
        items = [Notification.from_row(r) for r in rows[:limit]]
        return Page(items, items[-1].cursor if len(rows) > limit else None)

    async def after(self, user_id: str, cursor: Cursor, limit: int) -> list[Notification]:
        """Up to `limit` notifications newer than `cursor` and not archived, oldest first (what a
        feed replays)."""
        rows = await self._fetch(f"{_SELECT} WHERE user_id = %(user)s AND archived_at IS NULL "
                                 f"AND {_AFTER} {_OLDEST_FIRST} "
                                 "LIMIT %(limit)s", {"user": user_id, "limit": limit, **_params(cursor)})
        return [Notification.from_row(r) for r in rows]

    async def unread_count(self, user_id: str) -> int:
        rows = await self._fetch("SELECT count(*) FROM inbox WHERE user_id = %(user)s "
                                 "AND read_at IS NULL AND archived_at IS NULL", {"user": user_id})
        return int(rows[0][0])

    async def get(self, user_id: str, delivery_id: str) -> Notification | None:
        rows = await self._fetch(f"{_SELECT} WHERE user_id = %(user)s AND delivery_id = %(id)s",
                                 {"user": user_id, "id": delivery_id})
        return Notification.from_row(rows[0]) if rows else None

    async def mark(self, user_id: str, delivery_id: str, *, read: bool | None = None,
                   archived: bool | None = None) -> Notification | None:
        """Set or clear read and archived on one notification; None if the user has no such one.
        Marking what is already marked keeps the first time it was marked."""
        sets = []
        if read is not None:
            sets.append("read_at = " + ("coalesce(read_at, now())" if read else "NULL"))
        if archived is not None:
            sets.append("archived_at = " + ("coalesce(archived_at, now())" if archived else "NULL"))
        if not sets:
            return await self.get(user_id, delivery_id)
        rows = await self._fetch(f"UPDATE inbox SET {', '.join(sets)} WHERE user_id = %(user)s AND "
                                 f"delivery_id = %(id)s RETURNING {', '.join(COLUMNS)}",
                                 {"user": user_id, "id": delivery_id})
        return Notification.from_row(rows[0]) if rows else None

    async def mark_all(self, user_id: str, *, read: bool, until: Cursor | None) -> int:
        """Mark every notification of the user (up to `until`, if given) read or unread; archived
        ones are left as they are. Returns how many changed."""
        change = "read_at = now() WHERE read_at IS NULL" if read else \
            "read_at = NULL WHERE read_at IS NOT NULL"
        where = " AND user_id = %(user)s AND archived_at IS NULL"
        if until is not None:
            where += f" AND {_UNTIL}"
        async with self.pool.connection() as conn:
            cursor = await conn.execute(f"UPDATE inbox SET {change}{where}",
                                        {"user": user_id, **_params(until)})
            return cursor.rowcount

    async def _fetch(self, sql: str, params: dict[str, object]) -> list[tuple]:
        async with self.pool.connection() as conn:
            cursor = await conn.execute(sql, params)
            return await cursor.fetchall()


def _params(cursor: Cursor | None) -> dict[str, object]:
    return {} if cursor is None else {"at": cursor.created_at, "id": cursor.delivery_id}
