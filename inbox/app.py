"""The service's aiohttp application: routes, health, the OpenAPI document and the demo page."""

from __future__ import annotations

import time
from pathlib import Path

from aiohttp import web

from inbox import api, live, webhook
from inbox.openapi import document
from inbox.services import SERVICES, Services, lifecycle

STATIC = Path(__file__).resolve().parent / "static"


async def health(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    feed, receipts = services.feed, services.receipts
    return web.json_response({
        "status": "ok",
        "uptime_s": round(time.time() - services.started_at, 1),
        "feed": {"topic": feed.topic if feed else None,
                 "partitions": feed.partitions if feed else 0,
                 "received": feed.received if feed else 0,
                 "undecodable": feed.undecodable if feed else 0,
                 "connections": services.hub.connections(),
                 "remembered": services.hub.recent_count()},
        "receipts": {"topic": receipts.topic if receipts else None,
                     "written": receipts.written if receipts else 0},
    })


async def openapi(_: web.Request) -> web.Response:
    return web.json_response(document())


async def demo_page(_: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})


async def _close_feeds(app: web.Application) -> None:
    # Open feeds would hold a graceful shutdown for its whole timeout.
    app[SERVICES].hub.close_all()


def create_app(services: Services, *, connect: bool = True) -> web.Application:
    """The application; `connect=False` leaves out the connections (to inspect the routes)."""
    app = web.Application(client_max_size=webhook.MAX_BODY)
    app[SERVICES] = services
    users = "/v1/users/{user_id}"
    app.router.add_get(f"{users}/notifications", api.list_notifications)
    app.router.add_post(f"{users}/notifications/mark-all", api.mark_all)
    app.router.add_get(f"{users}/notifications/{{delivery_id}}", api.get_notification)
    app.router.add_patch(f"{users}/notifications/{{delivery_id}}", api.update_notification)
    app.router.add_get(f"{users}/unread-count", api.unread_count)
    app.router.add_get(f"{users}/feed", live.feed)
    app.router.add_post("/v1/receipts/{gateway}", webhook.receive)
    app.router.add_get("/health", health)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/", demo_page)
    app.router.add_static("/static/", STATIC)
    if connect:
        app.cleanup_ctx.append(lifecycle)
        app.on_shutdown.append(_close_feeds)
    return app
