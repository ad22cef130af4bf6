"""The receipt webhook: `POST /v1/receipts/{gateway}`, signed by the gateway (signing.py).

202 once the broker has every receipt of the request; 401 for an unknown gateway or a bad or stale
signature; 400 for a body that is not a receipt (the message names the field); 503 when the broker
did not acknowledge in time (the gateway retries: receipts are idempotent, the sink keeps the
latest status per delivery).
"""

from __future__ import annotations

import json
import logging
import time

from aiohttp import web

from inbox.auth import json_error
from inbox.receipts import BadReceipt, parse_receipts
from inbox.services import SERVICES
from inbox.signing import BadSignature, verify

log = logging.getLogger("notipipe.inbox.webhook")
MAX_BODY = 1024 * 1024


async def receive(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    gateway = request.match_info["gateway"]
    body = await request.read()
    secrets = services.gateway_secrets.get(gateway)
    if secrets is None:
        raise json_error(web.HTTPUnauthorized, f"unknown gateway {gateway!r}")
    try:
        verify(secrets, request.headers, body, int(time.time()), services.settings.receipt_max_age_s)
    except BadSignature as exc:
        raise json_error(web.HTTPUnauthorized, str(exc)) from None
    try:
        receipts = parse_receipts(json.loads(body), gateway, time.time_ns() // 1_000_000)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise json_error(web.HTTPBadRequest, "the body must be JSON: a receipt object or a list") from None
    except BadReceipt as exc:
        raise json_error(web.HTTPBadRequest, str(exc)) from None
    assert services.receipts is not None
    try:
        await services.receipts.write(receipts, services.settings.receipt_ack_timeout_s)
    except (TimeoutError, RuntimeError, BufferError) as exc:
        log.warning("receipts from %s not acknowledged: %s", gateway, exc)
        raise json_error(web.HTTPServiceUnavailable, "the receipts were not stored; retry later",
                         **{"Retry-After": "5"}) from None
    return web.json_response({"accepted": len(receipts)}, status=202)


