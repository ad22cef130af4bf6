"""The provider stub's delivery receipts: what a real gateway reports after it accepted a request.

For each accepted send the stub reports DELIVERED to the inbox service's receipt webhook, signed
as its gateway (inbox/signing.py); a fault of mode `bounce`, `fail` or `open` makes it report
BOUNCED or FAILED instead (the request itself is accepted, as a provider does), or DELIVERED and
then OPENED. Reports are sent in the background, retried while the webhook is unreachable or
answers 5xx/429 (the inbox service may start after the stub), and listed at `GET /receipts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from inbox.signing import sign

log = logging.getLogger("notipipe.provider_stub.receipts")

RECEIPT_MODES = {"bounce": "BOUNCED", "fail": "FAILED", "open": "OPENED"}
RETRY_FOR_S = 600.0
MAX_RECORDED = 100_000


def delivery_refs(body: Any, channel: str) -> list[dict[str, str]]:
    """(delivery_id, user_id, channel) of each delivery in a send's body: one object, a list, or
    JsonConverter envelopes. Deliveries without both ids get no receipt."""
    items: Iterable[Any] = body if isinstance(body, list) else [body]
    refs = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("payload"), dict) and "schema" in item:
            item = item["payload"]
        if isinstance(item, dict) and item.get("delivery_id") and item.get("user_id"):
            refs.append({"delivery_id": str(item["delivery_id"]), "user_id": str(item["user_id"]),
                         "channel": str(item.get("channel") or channel).lower()})
    return refs


def receipts_for(refs: list[dict[str, str]], mode: str | None, reason: str | None,
                 now_ms: int) -> list[dict[str, Any]]:
    """The receipts to report for accepted deliveries, given the matching receipt mode if any."""
    out: list[dict[str, Any]] = []
    for ref in refs:
        if mode in ("bounce", "fail"):
            out.append({**ref, "status": RECEIPT_MODES[mode], "reason": reason or f"stub {mode} mode",
                        "reported_at": now_ms})
            continue
        out.append({**ref, "status": "DELIVERED", "reported_at": now_ms})
        if mode == "open":
            out.append({**ref, "status": "OPENED", "reported_at": now_ms + 1})
    return out


@dataclass
class ReceiptReporter:
    url: str
    secret: bytes
    clock: Callable[[], float] = time.time
    retry_for_s: float = RETRY_FOR_S
    concurrency: int = 8
    reported: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_RECORDED))
    _session: aiohttp.ClientSession | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _slots: asyncio.Semaphore | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        self._slots = asyncio.Semaphore(self.concurrency)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()

    def report(self, receipts: list[dict[str, Any]]) -> None:
        """Send in the background; the send's answer does not wait for it."""
        if not receipts:
            return
        task = asyncio.get_running_loop().create_task(self._send(receipts))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def listed(self, delivery_id: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.reported if (delivery_id is None or r["delivery_id"] == delivery_id)
                and (status is None or r["status"] == status)]

    async def _send(self, receipts: list[dict[str, Any]]) -> None:
        assert self._session is not None and self._slots is not None
        body = json.dumps(receipts, separators=(",", ":")).encode()
        started, delay, attempts, outcome = time.monotonic(), 0.5, 0, "gave up"
        answer: int | None = None
        async with self._slots:
            while time.monotonic() - started < self.retry_for_s:
                attempts += 1
                headers = {"Content-Type": "application/json",
                           **sign(self.secret, body, int(self.clock()))}
                try:
                    async with self._session.post(self.url, data=body, headers=headers) as response:
                        answer = response.status
                        if response.status < 300:
                            outcome = "accepted"
                            break
                        if response.status < 500 and response.status != 429:
                            outcome = "rejected"  # a 4xx will not change by retrying
                            log.warning("receipts rejected by %s: %s %s", self.url, response.status,
                                        await response.text())
                            break
                except (aiohttp.ClientError, TimeoutError) as exc:
                    log.info("receipt webhook %s unreachable (%s); retrying", self.url, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        for receipt in receipts:
            self.reported.append({**receipt, "outcome": outcome, "answer": answer, "attempts": attempts})
