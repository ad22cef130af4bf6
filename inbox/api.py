"""The inbox API: a user's notifications, newest first, the unread count, read and archive marks."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from inbox.auth import json_error
from inbox.cursor import BadCursor, Cursor
from inbox.services import SERVICES
from inbox.store import Shelf

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
# The feed's starting point for an inbox that is empty: everything stored from now on is new.
BEGINNING = Cursor(0, "0")


def cursor_param(text: str | None, name: str) -> Cursor | None:
    """A cursor from a query parameter, header or body field (None when absent); 400 if bad."""
    if text is None or text == "":
        return None
    try:
        return Cursor.decode(text)
    except BadCursor as exc:
        raise json_error(web.HTTPBadRequest, f"{name}: {exc}") from None


def _limit(request: web.Request) -> int:
    text = request.query.get("limit", str(DEFAULT_LIMIT))
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise json_error(web.HTTPBadRequest, f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(text)


def _shelf(request: web.Request) -> Shelf:
    text = request.query.get("shelf", Shelf.INBOX.value)
    try:
        return Shelf(text)
    except ValueError:
        raise json_error(web.HTTPBadRequest, "shelf must be one of "
                         + ", ".join(s.value for s in Shelf)) from None


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise json_error(web.HTTPBadRequest, "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise json_error(web.HTTPBadRequest, "the body must be a JSON object")
    return body


def _flag(body: dict[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise json_error(web.HTTPBadRequest, f"{name} must be true or false")
    return value


async def list_notifications(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    user_id = services.auth.owner(request)
    before = cursor_param(request.query.get("cursor"), "cursor")
    shelf = _shelf(request)
    page = await services.store.page(user_id, before, _limit(request), shelf)
    body: dict[str, Any] = {
        "items": [n.to_json() for n in page.items],
        "next_cursor": page.next_cursor.encode() if page.next_cursor else None,
    }
    if before is None and shelf is Shelf.INBOX:
        body["feed_after"] = (page.items[0].cursor if page.items else BEGINNING).encode()
    return web.json_response(body)


async def get_notification(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    user_id = services.auth.owner(request)
    delivery_id = request.match_info["delivery_id"]
    found = await services.store.get(user_id, delivery_id)
    if found is None:
        raise _not_found_or_not_yet(services, user_id, delivery_id)
    return web.json_response(found.to_json())


async def unread_count(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    user_id = services.auth.owner(request)
    return web.json_response({"unread": await services.store.unread_count(user_id)})


async def update_notification(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    user_id = services.auth.owner(request)
    delivery_id = request.match_info["delivery_id"]
    body = await _json_body(request)
    unknown = set(body) - {"read", "archived"}
    if unknown:
        raise json_error(web.HTTPBadRequest, f"unknown fields {sorted(unknown)}: only read, archived")
    read, archived = _flag(body, "read"), _flag(body, "archived")
    if read is None and archived is None:
        raise json_error(web.HTTPBadRequest, "give read and/or archived (true or false)")
    updated = await services.store.mark(user_id, delivery_id, read=read, archived=archived)
    if updated is None:
        raise _not_found_or_not_yet(services, user_id, delivery_id)
    return web.json_response({**updated.to_json(),
                              "unread": await services.store.unread_count(user_id)})


async def mark_all(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    user_id = services.auth.owner(request)
    body = await _json_body(request)
    read = _flag(body, "read")
    if read is None:
        raise json_error(web.HTTPBadRequest, "give read: true (mark all read) or false (all unread)")
    if not isinstance(body.get("until"), str | None):
        raise json_error(web.HTTPBadRequest, "until must be a cursor from an earlier answer")
    until = cursor_param(body.get("until"), "until")
    changed = await services.store.mark_all(user_id, read=read, until=until)
    return web.json_response({"updated": changed, "unread": await services.store.unread_count(user_id)})


def _not_found_or_not_yet(services: Any, user_id: str, delivery_id: str) -> web.HTTPException:
    if services.hub.recent(user_id, delivery_id) is not None:
        # Pushed by the feed, not yet written by the sink: it will be there in a moment.
        return json_error(web.HTTPConflict, "this notification is not stored yet; retry shortly",
                          **{"Retry-After": "1"})
    return json_error(web.HTTPNotFound, "no such notification in this user's inbox")
