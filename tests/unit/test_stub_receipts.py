"""The provider stub's receipts (stack/stub_receipts.py): what it reports, signed, for what it
accepted, with the receipt modes of its fault API. The webhook is a small aiohttp app here that
checks the signature like the inbox service."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from inbox.signing import BadSignature, verify
from stack.provider_stub import REPORTER_KEY, StubState, create_app
from stack.stub_receipts import ReceiptReporter, delivery_refs, receipts_for
from tests.waiting import wait_for_async

SECRET = b"stub-receipts-secret-0123456789abcdef"
DELIVERY = {"delivery_id": "d-1", "user_id": "u1", "channel": "EMAIL", "address": "u1@example.org"}


class Webhook:
    """Records verified receipt requests; answers `fail_first` 503s first."""

    def __init__(self, fail_first: int = 0) -> None:
        self.receipts: list[dict[str, Any]] = []
        self.refused = 0
        self.fail_first = fail_first

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            verify([SECRET], request.headers, body, int(time.time()), max_age_s=60)
        except BadSignature:
            self.refused += 1
            return web.json_response({"error": "bad signature"}, status=401)
        if self.fail_first:
            self.fail_first -= 1
            return web.json_response({"error": "down"}, status=503)
        self.receipts.extend(json.loads(body))
        return web.json_response({"accepted": 1}, status=202)


@asynccontextmanager
async def stub_with_webhook(webhook: Webhook) -> AsyncIterator[TestClient]:
    hook_app = web.Application()
    hook_app.router.add_post("/v1/receipts/stub", webhook.handle)
    async with TestServer(hook_app) as hook_server:
        reporter = ReceiptReporter(str(hook_server.make_url("/v1/receipts/stub")), SECRET)
        async with TestClient(TestServer(create_app(StubState(), reporter))) as client:
            yield client


async def _send(client: TestClient, body: Any, channel: str = "email") -> int:
    response = await client.post(f"/send/{channel}", data=json.dumps(body))
    return response.status


def test_an_accepted_send_is_reported_delivered_signed() -> None:
    async def scenario() -> None:
        webhook = Webhook()
        async with stub_with_webhook(webhook) as client:
            assert await _send(client, DELIVERY) == 200
            await wait_for_async(lambda: webhook.receipts, 10, "the receipt")
            [receipt] = webhook.receipts
            assert {k: receipt[k] for k in ("delivery_id", "user_id", "channel", "status")} == {
                "delivery_id": "d-1", "user_id": "u1", "channel": "email", "status": "DELIVERED"}
            assert isinstance(receipt["reported_at"], int) and webhook.refused == 0
            # Recorded once the webhook has answered.
            reporter = client.server.app[REPORTER_KEY]
            await wait_for_async(lambda: reporter.reported, 5, "the report recorded")
            answer = await client.get("/receipts", params={"delivery_id": "d-1"})
            rows = (await answer.json())["receipts"]
            assert [(r["status"], r["outcome"], r["answer"]) for r in rows] == [
                ("DELIVERED", "accepted", 202)]
    asyncio.run(scenario())


def test_receipt_modes_bounce_fail_and_open_apply_to_matching_sends_only() -> None:
    async def scenario() -> None:
        webhook = Webhook()
        async with stub_with_webhook(webhook) as client:
            for spec in ({"mode": "bounce", "match": "bounces@", "reason": "mailbox unknown"},
                         {"mode": "fail", "channel": "sms"},
                         {"mode": "open", "match": "reader@"}):
                assert (await client.post("/faults", json=spec)).status == 201
            assert await _send(client, {**DELIVERY, "delivery_id": "b", "address": "bounces@x.org"}) == 200
            assert await _send(client, {**DELIVERY, "delivery_id": "f", "channel": "SMS"}, "sms") == 200
            assert await _send(client, {**DELIVERY, "delivery_id": "o", "address": "reader@x.org"}) == 200
            assert await _send(client, {**DELIVERY, "delivery_id": "d"}) == 200
            await wait_for_async(lambda: len(webhook.receipts) == 5, 10, "five receipts")
            got = sorted((r["delivery_id"], r["status"], r.get("reason")) for r in webhook.receipts)
            assert got == [("b", "BOUNCED", "mailbox unknown"), ("d", "DELIVERED", None),
                           ("f", "FAILED", "stub fail mode"), ("o", "DELIVERED", None),
                           ("o", "OPENED", None)]
            opened = {r["status"]: r["reported_at"] for r in webhook.receipts if r["delivery_id"] == "o"}
            assert opened["OPENED"] > opened["DELIVERED"]
    asyncio.run(scenario())


def test_a_refused_send_gets_no_receipt_and_a_down_webhook_is_retried() -> None:
    async def scenario() -> None:
        webhook = Webhook(fail_first=2)
        async with stub_with_webhook(webhook) as client:
            await client.post("/faults", json={"mode": "reject", "match": "nope@"})
            assert await _send(client, {**DELIVERY, "delivery_id": "x", "address": "nope@x.org"}) == 400
            assert await _send(client, DELIVERY) == 200
            await wait_for_async(lambda: webhook.receipts, 20, "the receipt after two 503s")
            assert [r["delivery_id"] for r in webhook.receipts] == ["d-1"]
            reporter = client.server.app[REPORTER_KEY]
            await wait_for_async(lambda: reporter.reported, 5, "the report recorded")
            listed = await (await client.get("/receipts")).json()
            assert [(r["delivery_id"], r["outcome"], r["attempts"]) for r in listed["receipts"]] == [
                ("d-1", "accepted", 3)]
    asyncio.run(scenario())


def test_a_receipt_mode_is_checked_like_the_other_faults() -> None:
    async def scenario() -> None:
        async with TestClient(TestServer(create_app())) as client:
            for spec in ({"mode": "bounce", "status": 500}, {"mode": "open", "reason": "x"},
                         {"mode": "fail", "reason": 7}):
                response = await client.post("/faults", json=spec)
                assert response.status == 400, spec
            listed = await (await client.get("/receipts")).json()
            assert listed == {"enabled": False, "count": 0, "receipts": []}
    asyncio.run(scenario())


def test_the_deliveries_of_a_body_are_found_in_every_shape_the_sink_sends() -> None:
    envelope = {"schema": {}, "payload": DELIVERY}
    assert delivery_refs([DELIVERY, envelope, {"delivery_id": "no-user"}], "email") == [
        {"delivery_id": "d-1", "user_id": "u1", "channel": "email"}] * 2
    assert receipts_for([], "open", None, 1) == []
