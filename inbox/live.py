"""The live feed: Server-Sent Events of a user's new in-app notifications.

A connection first gets what it missed since its cursor (the `Last-Event-ID` a browser sends when
it reconnects, or `after` on the first connection): what PostgreSQL holds after the cursor plus
what this instance pushed lately and the sink may not have stored yet, each delivery once. Then
it gets the live notifications, as the feed consumer reads them. Every event's id is the cursor to
resume from.

Events: `ready` (the replay is done, live from now on; data: {"replayed": n}) and `notification`
(data: a notification as the API shows it). A comment line every `KEEPALIVE_S` keeps proxies from
closing an idle connection.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from inbox.api import cursor_param
from inbox.cursor import Cursor
from inbox.hub import SeenIds, merge_replay
from inbox.notifications import Notification
from inbox.services import SERVICES

KEEPALIVE_S = 15.0
REPLAY_PAGE = 200
# A client further behind than this reloads its list instead (a `reload` event).
REPLAY_MAX = 5000


def sse(event: str, data: Any, event_id: str | None = None) -> bytes:
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"data: {json.dumps(data, separators=(',', ':'))}")
    return ("\n".join(lines) + "\n\n").encode()


async def feed(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    user_id = services.auth.owner(request, allow_query_token=True)
    after = cursor_param(request.headers.get("Last-Event-ID") or request.query.get("after"), "cursor")
    # Subscribed before the replay is read, so nothing falls between the two.
    subscription = services.hub.subscribe(user_id)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    try:
        await response.prepare(request)
        await response.write(b"retry: 2000\n\n")
        seen = SeenIds()
        position = after
        replayed = 0
        if after is not None:
            missed = await _missed(services, user_id, after)
            if missed is None:
                await response.write(sse("reload", {"reason": "too far behind: reload the list"}))
                return response
            for item in missed:
                seen.first_time(item.delivery_id)
                position = max(position, item.cursor) if position else item.cursor
                await response.write(sse("notification", item.to_json(), position.encode()))
            replayed = len(missed)
        await response.write(sse("ready", {"replayed": replayed}))
        while True:
            try:
                item = await subscription.next(KEEPALIVE_S)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            if item is None:  # the service stops, or this client fell too far behind
                return response
            if not seen.first_time(item.delivery_id):
                continue
            position = max(position, item.cursor) if position else item.cursor
            await response.write(sse("notification", item.to_json(), position.encode()))
    except ConnectionError:  # the client went away
        return response
    finally:
        services.hub.unsubscribe(subscription)


async def _missed(services: Any, user_id: str, after: Cursor) -> list[Notification] | None:
    stored: list[Notification] = []
    last = after
    while True:
        page = await services.store.after(user_id, last, REPLAY_PAGE)
        stored.extend(page)
        if len(page) < REPLAY_PAGE:
            break
        if len(stored) >= REPLAY_MAX:
            return None
        last = page[-1].cursor
    return merge_replay(stored, services.hub.recent_after(user_id, after), after)
