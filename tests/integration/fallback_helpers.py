"""What the fallback tests share: users with a phone, a device and an e-mail address, and delivery
receipts produced as the receipt webhook produces them (Avro through the registry, keyed by user,
as the inbox service's principal, the one allowed to write them)."""

from __future__ import annotations

import uuid

from confluent_kafka import Producer

from streams.client.sdk import NotificationClient, now_ms
from streams.connection.kafka import kafka_access
from streams.contracts.schemas import subject_for
from streams.core.model import Channel, ChannelPreference, Delivery, Preferences, Receipt, ReceiptStatus
from tests.integration.pipeline import WorkerProcess
from tests.waiting import wait_for

TIMEOUT_S = 300
# security: push, then SMS, then e-mail; five minutes each, so only a moved clock times one out.
FALLBACK_ENV = {
    "NOTIPIPE_FALLBACKS": f"security=push>sms>email/{TIMEOUT_S}",
    "NOTIPIPE_DEFAULT_CHANNELS": "in_app",
    "NOTIPIPE_MANDATORY_CATEGORIES": "security",
}


def new_user() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


def phone_of(user_id: str) -> str:
    return f"+49151{int(user_id.removeprefix('u-'), 16) % 10**8:08d}"


def reachable_everywhere(user_id: str) -> Preferences:
    """Push, SMS and e-mail with addresses; no in-app copy, so every delivery is on the chain."""
    channels = {Channel.PUSH: ChannelPreference(Channel.PUSH, True, f"device-{user_id}"),
                Channel.SMS: ChannelPreference(Channel.SMS, True, phone_of(user_id)),
                Channel.EMAIL: ChannelPreference(Channel.EMAIL, True, f"{user_id}@example.com"),
                Channel.IN_APP: ChannelPreference(Channel.IN_APP, False)}
    return Preferences(user_id=user_id, channels=channels, updated_at=now_ms())


def set_prefs(worker: WorkerProcess, client: NotificationClient, snapshot: Preferences) -> None:
    """Publish preferences and wait until the worker holds them (a separate topic from the events:
    an event sent at once could otherwise be routed before the worker read them)."""
    before = worker.counter("preferences.stored")
    client.set_preferences(snapshot)
    client.flush()
    wait_for(lambda: worker.counter("preferences.stored") == before + 1, 30, "the worker to store prefs")


def send_login(client: NotificationClient, user_id: str, n: int = 1) -> str:
    event_id = client.send(user_id=user_id, category="security.login", title=f"New sign-in {n}",
                           body="From a new device. Not you? Secure your account.")
    client.flush()
    return event_id


def send_receipt(client: NotificationClient, delivery: Delivery, status: ReceiptStatus) -> None:
    """A DeliveryStatus on the receipts topic, keyed by user (co-partitioned with the events)."""
    topic = client.settings.topics.receipts
    at = now_ms()
    receipt = Receipt(delivery.delivery_id, delivery.user_id, delivery.channel, status,
                      reported_at=at, received_at=at, provider="test-gateway")
    producer = Producer({**kafka_access("inbox", client.settings.bootstrap_servers).producer_config(),
                         "partitioner": "murmur2_random"})
    producer.produce(topic, key=delivery.user_id.encode(),
                     value=client.codec.encode(subject_for(topic), receipt.to_avro()))
    assert producer.flush(30) == 0
