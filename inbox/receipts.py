"""Delivery receipts: what a gateway reports, checked, and written to the receipts topic.

A receipt becomes a `DeliveryStatus` record (schemas/delivery_status.avsc) keyed by its user, so
it lands on the partition number of that user's events; the webhook answers only once the broker
has acknowledged every record of the request.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from confluent_kafka import KafkaError, Producer

from streams.connection.produce import produce
from streams.contracts.avro_codec import AvroCodec
from streams.contracts.schemas import subject_for
from streams.core.model import Channel, to_ms

STATUSES = ("DELIVERED", "OPENED", "BOUNCED", "FAILED")
MAX_PER_REQUEST = 1000
MAX_TEXT = 1000


class BadReceipt(ValueError):
    """The request body is not a receipt; the message names the field and what is expected."""


@dataclass(frozen=True)
class Receipt:
    delivery_id: str
    user_id: str
    channel: Channel
    status: str
    reason: str | None
    provider: str
    reported_at: int  # epoch ms
    received_at: int

    def to_avro(self) -> dict[str, Any]:
        return {"delivery_id": self.delivery_id, "user_id": self.user_id, "channel": str(self.channel),
                "status": self.status, "reason": self.reason, "provider": self.provider,
                "reported_at": self.reported_at, "received_at": self.received_at}


def parse_receipts(body: Any, provider: str, received_at: int) -> list[Receipt]:
    """One receipt object, or a list of them, from a gateway's JSON body."""
    items = body if isinstance(body, list) else [body]
    if not items:
        raise BadReceipt("the body is an empty list: send one receipt object or a list of them")
    if len(items) > MAX_PER_REQUEST:
        raise BadReceipt(f"{len(items)} receipts in one request; at most {MAX_PER_REQUEST}")
    return [_receipt(item, i if isinstance(body, list) else None, provider, received_at)
            for i, item in enumerate(items)]


def _receipt(item: Any, index: int | None, provider: str, received_at: int) -> Receipt:
    where = "" if index is None else f"receipt [{index}]: "
    if not isinstance(item, Mapping):
        raise BadReceipt(f"{where}expected a JSON object with delivery_id, user_id, channel, status")

    def text(name: str, required: bool = True) -> str | None:
        value = item.get(name)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
            raise BadReceipt(f"{where}{name} must be a non-empty string (at most {MAX_TEXT} characters)")
        return value

    delivery_id, user_id = text("delivery_id"), text("user_id")
    try:
        channel = Channel.parse(text("channel") or "")
    except ValueError:
        raise BadReceipt(f"{where}channel must be one of "
                         f"{', '.join(c.key for c in Channel)}, not {item.get('channel')!r}") from None
    status = (text("status") or "").upper()
    if status not in STATUSES:
        raise BadReceipt(f"{where}status must be one of {', '.join(STATUSES)}, not {item.get('status')!r}")
    reported = item.get("reported_at", received_at)
    return Receipt(delivery_id or "", user_id or "", channel, status, text("reason", required=False),
                   provider, _millis(reported, f"{where}reported_at"), received_at)


def _millis(value: Any, name: str) -> int:
    """Epoch milliseconds, or an ISO-8601 time with a zone."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return to_ms(parsed)
    raise BadReceipt(f"{name} must be epoch milliseconds or ISO-8601 with a zone "
                     f"(e.g. 2025-01-31T12:00:00Z), not {value!r}")


class ReceiptProducer:
    """Writes receipts to the topic and tells, per request, when the broker has them all."""

    def __init__(self, config: dict[str, Any], topic: str, codec: AvroCodec) -> None:
        self.topic = topic
        self.subject = subject_for(topic)
        self.codec = codec
        self.producer = Producer(config)
        self.written = 0
        self._stop = threading.Event()
        # Serving delivery reports is what resolves the requests' futures.
        self._thread = threading.Thread(target=self._poll, name="inbox-receipts", daemon=True)

    def start(self) -> None:
        self.codec.schema_id(self.subject)  # fails now, not at the first receipt, if unregistered
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        self.producer.flush(10)

    async def write(self, receipts: Sequence[Receipt], timeout_s: float) -> None:
        """Returns once the broker acknowledged every receipt; raises on a failure or timeout."""
        loop = asyncio.get_running_loop()
        futures = []
        for receipt in receipts:
            future: asyncio.Future[None] = loop.create_future()
            value = self.codec.encode(self.subject, receipt.to_avro())
            produce(self.producer, self.topic, receipt.user_id.encode(), value,
                    _reporter(loop, future))
            futures.append(future)
        await asyncio.wait_for(asyncio.gather(*futures), timeout_s)
        self.written += len(receipts)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.1)


def _reporter(loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]):  # noqa: ANN202
    def on_delivery(err: KafkaError | None, _msg: object) -> None:
        loop.call_soon_threadsafe(_settle, future, err)
    return on_delivery


def _settle(future: asyncio.Future[None], err: KafkaError | None) -> None:
    if future.done():  # the request timed out meanwhile
        return
    if err is None:
        future.set_result(None)
    else:
        future.set_exception(RuntimeError(f"the broker refused a receipt: {err}"))
