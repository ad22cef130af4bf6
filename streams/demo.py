"""`notipipe demo`: a few events through the running pipeline, shown where they arrive.

Needs the stack and a worker (`notipipe stack up --with-worker`). It sets one user's preferences,
sends an invoice (delivered at once on email and in-app), then a burst of comments over the
email throttle limit: the first go out, the rest arrive folded into one digest when the throttle
window ends. Finally it reads the rows the JDBC sink wrote and the requests the HTTP sink made.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import urllib.request
import uuid
from collections.abc import Callable

import psycopg
from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient

from stack.settings import StackSettings

from .avro_codec import AvroCodec
from .client import ClientSettings, NotificationClient, now_ms
from .connection.kafka import kafka_access
from .model import Channel, ChannelPreference, Delivery, Preferences
from .schemas import load_schema, subject_for
from .settings import RouterSettings
from .topics import deliveries_topic


def _say(text: str) -> None:
    print(text, flush=True)


class DeliveryFeed:
    """The email and in-app delivery topics, decoded, filtered to one user."""

    def __init__(self, settings: ClientSettings, user: str) -> None:
        self.user = user
        topics = [deliveries_topic(ch, settings.topic_prefix) for ch in ("email", "in_app")]
        self.codec = AvroCodec(SchemaRegistryClient({"url": settings.registry_url}), auto_register=False)
        for topic in topics:
            self.codec.add_subject(subject_for(topic), load_schema("delivery"))
        self.consumer = Consumer({**kafka_access("ops", settings.bootstrap_servers).confluent_config(),
                                  "group.id": f"notipipe-demo-{uuid.uuid4().hex[:8]}",
                                  "auto.offset.reset": "latest", "enable.auto.commit": False})
        self.consumer.subscribe(topics)
        self.consumer.poll(1.0)  # join the group before anything is sent

    def collect(self, until: Callable[[list[Delivery]], bool], timeout_s: float) -> list[Delivery]:
        found: list[Delivery] = []
        deadline = time.monotonic() + timeout_s
        while not until(found) and time.monotonic() < deadline:
            message = self.consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            delivery = Delivery.from_avro(self.codec.decode(message.value())[1])
            if delivery.user_id == self.user:
                found.append(delivery)
                _say(f"  <- {delivery.channel.key:<6} {delivery.kind:<6} reason={delivery.reason:<15} "
                     f"{delivery.title!r}, {delivery.item_count} event(s)")
        return found


def _worker_counter(name: str) -> int:
    port = os.environ.get("NOTIPIPE_WEB_PORT") or "6066"
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/counters", timeout=2) as response:
            return int(json.load(response).get(name, 0))
    except OSError as exc:
        raise SystemExit(f"error: no worker answers on port {port} ({exc}); start one with "
                         "`notipipe stack up --with-worker` or `notipipe worker`") from None


def run(args: argparse.Namespace) -> int:
    stack = StackSettings.from_env()
    rules = RouterSettings.from_env()
    settings = ClientSettings.from_env()
    client = NotificationClient(settings)
    user = f"demo-{uuid.uuid4().hex[:6]}"
    feed = DeliveryFeed(settings, user)
    limit = 2
    window_s = rules.throttle_window_ms / 1000
    _say(f"demo user {user}: email {user}@example.com + in-app; at most {limit} emails per "
         f"{window_s:.0f}s throttle window")
    stored = _worker_counter("preferences.stored")
    client.set_preferences(Preferences(
        user_id=user, updated_at=now_ms(),
        channels={Channel.EMAIL: ChannelPreference(Channel.EMAIL, True, f"{user}@example.com", limit),
                  Channel.IN_APP: ChannelPreference(Channel.IN_APP, True)}))
    client.flush()
    deadline = time.monotonic() + args.timeout
    while _worker_counter("preferences.stored") <= stored and time.monotonic() < deadline:
        time.sleep(0.2)

    _say("-> 1 invoice (billing: sent at once, on both channels)")
    client.send(user_id=user, category="billing", title="Your invoice is ready",
                body="Invoice #1042 for 12.00 EUR")
    client.flush()
    feed.collect(lambda found: len(found) >= 2, args.timeout)

    _say(f"-> a burst of 5 comments by email: over the limit of {limit}, the rest is folded into "
         f"one digest sent when the throttle window ends (within {window_s:.0f}s)")
    for i in range(5):
        client.send(user_id=user, category="social.comment", title=f"Comment {i + 1} on your post",
                    body=f"user{i} wrote something", channels=["email"])
    client.flush()
    burst = feed.collect(lambda found: any(d.kind == "DIGEST" for d in found),
                         args.timeout + window_s)
    digest = next((d for d in burst if d.kind == "DIGEST"), None)
    if digest is None:
        _say("no digest arrived: is the worker running? (`notipipe stack status`)")
        return 1
    _say(f"   the digest says: {digest.title!r} / {digest.body!r}")

    with psycopg.connect(stack.postgres_dsn) as conn:
        rows: list = []
        deadline = time.monotonic() + args.timeout
        while not rows and time.monotonic() < deadline:
            rows = conn.execute("SELECT kind, title FROM inbox WHERE user_id = %s", (user,)).fetchall()
            time.sleep(0.5)
    _say(f"PostgreSQL inbox (JDBC sink): {rows}")
    deadline = time.monotonic() + args.timeout
    requests: list = []
    while len(requests) < len(burst) + 1 and time.monotonic() < deadline:
        with urllib.request.urlopen(f"{stack.stub_url}/requests?channel=email", timeout=5) as response:
            requests = [q for q in json.load(response)["requests"] if q.get("body", {}) and
                        isinstance(q["body"], dict) and q["body"].get("user_id") == user]
        time.sleep(0.5)
    _say(f"provider stub (HTTP sink): {len(requests)} email requests for {user}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("demo", help="send a few events through the running pipeline and show "
                                         "where they arrive",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeout", type=float, default=60, help="seconds to wait per step (default: 60)")
    parser.set_defaults(handler=run)
