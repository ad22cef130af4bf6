"""`notipipe dashboard`: the live dashboard, an aiohttp page that reads Prometheus' HTTP API and
redraws itself every few seconds (monitoring/static/: the page and its own small SVG charts).

Routes:
  GET  /                     the page
  GET  /api/panels           the panels (monitoring/panels.py) with their PromQL, and the refresh
  GET  /api/prom/{endpoint}  Prometheus' query, query_range and alerts APIs, passed through (the
                             page talks to one origin; Prometheus stays on loopback)
  POST /api/notifications    Alertmanager's webhook; GET lists the last notifications received
  GET  /health
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import deque
from pathlib import Path

import aiohttp
from aiohttp import web

from monitoring.panels import rate_window, resolved
from monitoring.settings import MonitoringSettings
from stack.settings import ConfigError, StackSettings

STATIC = Path(__file__).resolve().parent / "static"
PROXIED = frozenset({"query", "query_range", "alerts"})
NOTIFICATIONS_KEPT = 100

log = logging.getLogger("notipipe.dashboard")
CONFIG = web.AppKey("config", dict)
NOTIFICATIONS = web.AppKey("notifications", deque)
SESSION = web.AppKey("session", aiohttp.ClientSession)


async def page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")


async def panels(request: web.Request) -> web.Response:
    return web.json_response(request.app[CONFIG])


async def prometheus(request: web.Request) -> web.Response:
    endpoint = request.match_info["endpoint"]
    if endpoint not in PROXIED:
        return web.json_response({"status": "error", "error": f"not served here: {endpoint}"}, status=404)
    url = f"{request.app[CONFIG]['prometheus_url']}/api/v1/{endpoint}"
    try:
        async with request.app[SESSION].get(url, params=request.query) as upstream:
            body = await upstream.read()
            return web.Response(body=body, status=upstream.status, content_type="application/json")
    except (aiohttp.ClientError, TimeoutError) as exc:
        return web.json_response({"status": "error", "errorType": "unreachable",
                                  "error": f"Prometheus at {url} does not answer: {exc}"}, status=502)


async def receive_notification(request: web.Request) -> web.Response:
    try:
        payload = await request.json()
    except ValueError:
        return web.json_response({"error": "body must be Alertmanager's webhook JSON"}, status=400)
    request.app[NOTIFICATIONS].append(payload)
    for alert in payload.get("alerts", []):
        log.info("alert %s %s %s", alert.get("status"), alert.get("labels", {}).get("alertname"),
                 alert.get("labels"))
    return web.json_response({"received": len(payload.get("alerts", []))})


async def list_notifications(request: web.Request) -> web.Response:
    return web.json_response({"notifications": list(request.app[NOTIFICATIONS])})


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app(prometheus_url: str, monitoring: MonitoringSettings) -> web.Application:
    app = web.Application()
    # The page evaluates every query at now - settle_s: a scrape still in flight then cannot add a
    # sample to a moment already drawn, so what the page drew is what Prometheus answers for it.
    app[CONFIG] = {"prometheus_url": prometheus_url, "refresh_s": max(2, monitoring.scrape_interval_s),
                   "settle_s": monitoring.scrape_interval_s + 1,
                   "rate_window": rate_window(monitoring), "range_s": 900, "panels": resolved(monitoring)}
    app[NOTIFICATIONS] = deque(maxlen=NOTIFICATIONS_KEPT)

    async def session(app: web.Application):
        app[SESSION] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        yield
        await app[SESSION].close()

    app.cleanup_ctx.append(session)
    app.router.add_get("/", page)
    app.router.add_get("/api/panels", panels)
    app.router.add_get("/api/prom/{endpoint}", prometheus)
    app.router.add_post("/api/notifications", receive_notification)
    app.router.add_get("/api/notifications", list_notifications)
    app.router.add_get("/health", health)
    app.router.add_static("/static/", STATIC)
    return app


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "dashboard", help="serve the live dashboard (lag, rates, outcomes, latency, connectors, alerts)",
        description="Serve the live dashboard: it reads Prometheus' HTTP API and redraws itself. "
                    "`notipipe stack up` starts one; this runs one in the foreground.",
        epilog="Ports: NOTIPIPE_DASHBOARD_PORT (8095), NOTIPIPE_PROMETHEUS_PORT (9190). Panels: "
               "monitoring/panels.py; the same panels as a Grafana dashboard: "
               "monitoring/grafana/notipipe.json.")
    parser.add_argument("--port", type=int,
                        help="port on 127.0.0.1 (default: NOTIPIPE_DASHBOARD_PORT or 8095)")
    parser.add_argument("--prometheus-url", help="Prometheus to read (default: http://127.0.0.1:NOTIPIPE_PROMETHEUS_PORT)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        stack = StackSettings.from_env()
        monitoring = MonitoringSettings.from_env()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    port = args.port or stack.dashboard_port
    app = create_app(args.prometheus_url or stack.prometheus_url, monitoring)
    log.info("dashboard on http://127.0.0.1:%d reading %s", port, app[CONFIG]["prometheus_url"])
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitoring.dashboard")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    return run(parser.parse_args(["dashboard", *(argv if argv is not None else sys.argv[1:])]))


if __name__ == "__main__":
    sys.exit(main())
