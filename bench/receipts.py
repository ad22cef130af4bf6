"""The gateways' delivery receipts, played by the benchmark: a share of the e-mail, SMS and push
deliveries gets a DeliveryStatus back on the receipts topic (keyed by user, as the webhook
writes them), so a worker joins receipts with its users' state while it routes.

Which deliveries get one, and which status, is decided by the delivery id alone, so every system
and every run gets receipts for the same deliveries: one in ten of them reports BOUNCED, the rest
DELIVERED; the others get none (their fallbacks, where chains are on, time out).
"""

from __future__ import annotations

import threading
import time
import uuid
import zlib
from collections import Counter

from confluent_kafka import Consumer

from stack.settings import StackSettings
from streams.contracts.avro_codec import AvroCodec
from streams.contracts.schemas import subject_for
from streams.contracts.topics import Topics
from streams.core.model import Channel, Receipt, ReceiptStatus

from . import kafka_io

BOUNCED_SHARE = 0.1  # of the deliveries that get a receipt
GATEWAY_CHANNELS = (Channel.EMAIL, Channel.SMS, Channel.PUSH)  # in-app has no gateway


def delivery_id_of(value: bytes) -> str:
    """The first field of a Delivery in the Confluent wire format (5-byte header, then an Avro
    string: zig-zag varint length and UTF-8), without decoding the rest."""
    shift = length = 0
    pos = 5
    while True:
        byte = value[pos]
        pos += 1
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
    length = (length >> 1) ^ -(length & 1)
    return value[pos:pos + length].decode("utf-8")


def receipt_status(delivery_id: str, share: float) -> ReceiptStatus | None:
    """The status reported for this delivery, or None: no receipt. ``share``: of all deliveries."""
    pick = zlib.crc32(delivery_id.encode()) / 2**32
    if pick >= share:
        return None
    return ReceiptStatus.BOUNCED if pick < share * BOUNCED_SHARE else ReceiptStatus.DELIVERED


class ReceiptResponder(threading.Thread):
    """Reads the gateway channels' delivery topics from now on and answers with receipts."""

    def __init__(self, stack: StackSettings, topics: Topics, codec: AvroCodec, share: float) -> None:
        super().__init__(daemon=True, name="receipt-responder")
        self.share = share
        self.receipts_topic = topics.receipts
        self.subject = subject_for(topics.receipts)
        self.codec = codec
        self.channel_of = {topics.deliveries(ch.key): ch for ch in GATEWAY_CHANNELS}
        self.consumer = Consumer({**kafka_io.kafka_config(stack),
                                  "group.id": f"bench-receipts-{uuid.uuid4().hex[:8]}",
                                  "auto.offset.reset": "latest", "enable.auto.commit": False})
        self.consumer.subscribe(list(self.channel_of))
        self.producer = kafka_io.make_producer(stack)
        self.sent: Counter = Counter()
        self._stop_event = threading.Event()

    def run(self) -> None:
        consume, produce, poll = self.consumer.consume, self.producer.produce, self.producer.poll
        while not self._stop_event.is_set():
            for message in consume(2000, 0.2):
                if message.error() is not None or not message.value():
                    continue
                delivery_id = delivery_id_of(message.value())
                status = receipt_status(delivery_id, self.share)
                if status is None:
                    continue
                now = time.time_ns() // 1_000_000
                user = message.key().decode()
                receipt = Receipt(delivery_id, user, self.channel_of[message.topic()], status,
                                  reported_at=now, received_at=now, provider="bench")
                value = self.codec.encode(self.subject, receipt.to_avro())
                while True:
                    try:
                        produce(self.receipts_topic, value=value, key=message.key())
                        break
                    except BufferError:
                        poll(0.05)
                self.sent[status.value.lower()] += 1
            poll(0)

    def stop(self) -> dict[str, int]:
        self._stop_event.set()
        self.join(10)
        self.producer.flush(30)
        self.consumer.close()
        return dict(self.sent)
