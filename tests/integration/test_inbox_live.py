"""The inbox service with the whole pipeline: a worker routing real events, the project's
connectors on this module's topics, two service instances side by side, the live feed and its
resume, the demo page in headless Chromium, and delivery receipts from the webhook and from the
provider stub into delivery_log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from inbox.api import BEGINNING
from stack.components import InboxService
from stack.connectors_setup import connect_request
from stack.settings import StackSettings
from streams.client.sdk import NotificationClient
from streams.contracts.pipeline_codec import pipeline_codec
from streams.contracts.topics import Topics
from streams.core.model import Channel, ChannelPreference, Delivery, DeliveryKind, Preferences, Priority
from tests.integration.inbox_harness import GATEWAY, InboxInstance, Secrets, scoped_connectors
from tests.integration.kafka_clients import admin_config
from tests.integration.pipeline import ROOT, PipelineEnv, Watcher, WorkerProcess
from tests.waiting import wait_for

ROUTER_ENV = {"NOTIPIPE_DEFAULT_CHANNELS": "in_app,email"}
RUN = uuid.uuid4().hex[:8]
ARTIFACTS = ROOT / ".cache" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARRIVAL_S = 90  # a delivery through Connect on a busy 2-core machine, group joins included


@pytest.fixture(scope="module")
def connectors(settings: StackSettings, pipeline_env: PipelineEnv) -> Iterator[list[str]]:
    with scoped_connectors(settings, pipeline_env) as names:
        yield names


@pytest.fixture(scope="module")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> Secrets:
    return Secrets.make(tmp_path_factory.mktemp("inbox-secrets"))


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("inbox-logs")


@pytest.fixture(scope="module")
def instances(pipeline_env: PipelineEnv, secrets: Secrets, logs: Path,
              connectors) -> Iterator[list[InboxInstance]]:
    started = [InboxInstance(pipeline_env, secrets, logs).start() for _ in range(2)]
    yield started
    for instance in started:
        instance.stop()


@pytest.fixture(scope="module", autouse=True)
def cleanup(pg_module) -> Iterator[None]:
    yield
    for table in ("inbox", "delivery_log", "delivery_receipts"):
        pg_module.execute(f"DELETE FROM {table} WHERE user_id LIKE %s", (f"%{RUN}%",))


@pytest.fixture(scope="module")
def pg_module(settings: StackSettings):
    import psycopg

    with psycopg.connect(settings.postgres_dsn, autocommit=True) as conn:
        yield conn


def new_user(what: str) -> str:
    return f"{what}-{RUN}-{uuid.uuid4().hex[:6]}"


def send_in_app(client: NotificationClient, watcher: Watcher, user: str, title: str) -> Delivery:
    before = len(watcher.for_user(user, "in_app"))
    client.send(user_id=user, category="billing", title=title, body=f"{title}, the body",
                channels=["in_app"])
    client.flush()
    return watcher.wait_for_user(user, before + 1, "in_app", timeout_s=60)[before]


def connector_action(settings: StackSettings, name: str, action: str) -> None:
    connect_request(settings, "PUT", f"/connectors/{name}/{action}")

    def state() -> str:
        status = connect_request(settings, "GET", f"/connectors/{name}/status")
        states = {status["connector"]["state"], *(t["state"] for t in status["tasks"])}
        return states == {"PAUSED" if action == "pause" else "RUNNING"}
    wait_for(state, 60, f"connector {name} to {action}")


def test_each_instance_pushes_a_new_delivery_to_its_own_connections(
        instances: list[InboxInstance], secrets: Secrets, worker: WorkerProcess,
        client: NotificationClient, watcher: Watcher) -> None:
    a, b = instances
    user, bystander = new_user("two"), new_user("bystander")
    token = secrets.token(user)
    feeds = [a.feed(user, token), a.feed(user, token, token_in_query=False), b.feed(user, token)]
    other = b.feed(bystander, secrets.token(bystander))
    try:
        for feed in [*feeds, other]:
            assert feed.status == 200 and feed.wait_ready().data == {"replayed": 0}
        delivery = send_in_app(client, watcher, user, "Deploy finished")
        for feed in feeds:
            feed.wait_ids([delivery.delivery_id], timeout_s=30)
        # Absence for the bystander, checked after a later marker of its own arrived.
        marker = send_in_app(client, watcher, bystander, "marker")
        other.wait_ids([marker.delivery_id], timeout_s=30)
        assert other.ids() == [marker.delivery_id]
        for feed in feeds:
            [shown] = feed.notifications()
            assert (shown["delivery_id"], shown["title"], shown["read"]) == (
                delivery.delivery_id, "Deploy finished", False)
            assert feed.last_id() == shown["cursor"]
        for instance in (a, b):
            assert instance.health()["feed"]["received"] >= 2
    finally:
        for feed in [*feeds, other]:
            feed.close()


def test_a_reconnecting_client_resumes_from_its_cursor_without_gaps(
        settings: StackSettings, pipeline_env: PipelineEnv, connectors: list[str],
        instances: list[InboxInstance], secrets: Secrets, logs: Path, worker: WorkerProcess,
        client: NotificationClient, watcher: Watcher, pg_module) -> None:
    a, _ = instances
    user = new_user("resume")
    token = secrets.token(user)
    first = a.feed(user, token, after=BEGINNING.encode())
    first.wait_ready()
    n1 = send_in_app(client, watcher, user, "one")
    first.wait_ids([n1.delivery_id], timeout_s=30)
    cursor = first.last_id()
    first.close()
    wait_for(lambda: pg_module.execute("SELECT 1 FROM inbox WHERE delivery_id = %s",
                                       (n1.delivery_id,)).fetchone(), ARRIVAL_S, "n1 stored")

    # While the client is away the inbox sink stalls: what it missed is not in PostgreSQL yet.
    inbox_sink = f"{pipeline_env.prefix}jdbc-inbox"
    connector_action(settings, inbox_sink, "pause")
    try:
        n2 = send_in_app(client, watcher, user, "two")
        n3 = send_in_app(client, watcher, user, "three")
        path = f"/v1/users/{user}/notifications/{n3.delivery_id}"
        # The instance pushed it, the sink has not stored it: "not yet", with when to retry.
        not_yet = wait_for(lambda: (r := a.call("PATCH", path, token, {"read": True})).status == 409 and r,
                           30, "n3 known to the instance")
        assert not_yet.headers["Retry-After"] == "1"
        assert a.call("GET", path, token).status == 409

        resumed = a.feed(user, token, last_event_id=cursor)
        assert resumed.wait_ready().data == {"replayed": 2}
        assert resumed.ids() == [n2.delivery_id, n3.delivery_id]
    finally:
        connector_action(settings, inbox_sink, "resume")
    n4 = send_in_app(client, watcher, user, "four")
    resumed.wait_ids([n4.delivery_id], timeout_s=30)
    assert resumed.ids() == [n2.delivery_id, n3.delivery_id, n4.delivery_id]
    resumed.close()
    ids = [n.delivery_id for n in (n1, n2, n3, n4)]
    wait_for(lambda: pg_module.execute("SELECT count(*) FROM inbox WHERE delivery_id = ANY(%s)",
                                       (ids,)).fetchone()[0] == 4, ARRIVAL_S, "all four stored")
    assert a.call("PATCH", path, token, {"read": True}).status == 200

    # An instance that started after they came replays them from PostgreSQL; one that also holds
    # them in memory sends each once; the Last-Event-ID header wins over `after`.
    fresh = InboxInstance(pipeline_env, secrets, logs).start()
    try:
        for instance in (fresh, a):
            again = instance.feed(user, token, after=BEGINNING.encode(), last_event_id=cursor)
            assert again.wait_ready().data == {"replayed": 3}
            assert again.ids() == ids[1:]
            assert [n["read"] for n in again.notifications()] == [False, True, False]
            again.close()
        caught_up = fresh.feed(user, token, last_event_id=resumed.last_id())
        assert caught_up.wait_ready().data == {"replayed": 0}
        caught_up.close()
    finally:
        fresh.stop()


def test_the_demo_page_shows_a_new_notification_live_and_marks_it_read(
        pipeline_env: PipelineEnv, instances: list[InboxInstance], secrets: Secrets,
        worker: WorkerProcess, pg_module) -> None:
    from playwright.sync_api import sync_playwright

    a, _ = instances
    user = new_user("page")
    environ = {**os.environ, "NOTIPIPE_TOPIC_PREFIX": pipeline_env.prefix,
               "NOTIPIPE_BOOTSTRAP_SERVERS": pipeline_env.stack.bootstrap_servers,
               "NOTIPIPE_REGISTRY_URL": pipeline_env.stack.registry_url,
               "NOTIPIPE_INBOX_SECRETS_DIR": str(secrets.directory)}

    def cli(*args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "streams.cli", *args], capture_output=True,
                                text=True, timeout=120, env=environ)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    token = cli("inbox", "token", "--user", user)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 800, "height": 600})
            page.goto(f"{a.url}/#token={token}")
            page.wait_for_selector("body[data-feed=live]", timeout=30_000)
            assert page.locator("#badge").is_hidden()
            assert page.locator("#list li").count() == 0

            cli("send", "--user", user, "--category", "billing", "--title", "Your invoice is ready",
                "--body", "Invoice #42: 19.99 EUR", "--channel", "in_app")
            item = page.locator("#list li", has_text="Your invoice is ready")
            item.wait_for(timeout=60_000)
            page.wait_for_function("document.querySelector('#badge').textContent === '1'", timeout=10_000)
            assert page.locator("#badge").is_visible()
            assert "unread" in (item.get_attribute("class") or "")
            page.screenshot(path=str(ARTIFACTS / "inbox-demo-new.png"))

            item.locator(".toggle-read").click()
            page.wait_for_function("document.querySelector('#badge').hidden", timeout=60_000)
            assert "read" in (item.get_attribute("class") or "").split()
            assert item.locator(".toggle-read").inner_text() == "Mark unread"
            page.screenshot(path=str(ARTIFACTS / "inbox-demo-read.png"))
            assert not page.locator("#error").is_visible()
        finally:
            browser.close()
    assert pg_module.execute("SELECT read_at IS NOT NULL FROM inbox WHERE user_id = %s",
                             (user,)).fetchall() == [(True,)]
    assert (ARTIFACTS / "inbox-demo-read.png").stat().st_size > 0


def _messages_of(settings: StackSettings, topic: str, user: str, count: int) -> list[Any]:
    """The first `count` messages of `user` (by key) on a topic, from its beginning."""
    consumer = Consumer({**admin_config(settings),
                         "group.id": f"it-{uuid.uuid4().hex}", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe([topic])
    found: list[Any] = []
    try:
        def poll() -> bool:
            found.extend(m for m in consumer.consume(100, timeout=0.5)
                         if m.error() is None and m.key() == user.encode())
            return len(found) >= count
        wait_for(poll, 60, f"{count} records of {user} on {topic}")
    finally:
        consumer.close()
    return found[:count]


def _receipts_on(settings: StackSettings, topic: str, user: str, count: int) -> list[tuple[Any, dict]]:
    """(message, decoded DeliveryStatus) of the user's first `count` receipts on a topic."""
    codec = pipeline_codec(SchemaRegistryClient({"url": settings.registry_url}), Topics(""))
    return [(m, codec.decode(m.value())[1]) for m in _messages_of(settings, topic, user, count)]


def test_a_receipt_through_the_webhook_ends_as_the_status_in_delivery_log(
        settings: StackSettings, pipeline_env: PipelineEnv, instances: list[InboxInstance],
        secrets: Secrets, worker: WorkerProcess, client: NotificationClient, watcher: Watcher,
        pg_module) -> None:
    a, b = instances
    user = new_user("receipt")
    delivery = send_in_app(client, watcher, user, "receipted")
    x = delivery.delivery_id
    wait_for(lambda: pg_module.execute("SELECT 1 FROM delivery_log WHERE delivery_id = %s", (x,)).fetchone(),
             ARRIVAL_S, "the delivery_log row")
    good = {"delivery_id": x, "user_id": user, "channel": "in_app", "status": "OPENED",
            "reported_at": 1_750_000_060_000}

    # Refused: an unknown gateway, another secret, a stale signature, a body that is not a receipt.
    assert a.post_receipts(good, gateway="nobody").status == 401
    assert a.post_receipts(good, secret=b"x" * 32).status == 401
    assert a.post_receipts(good, now_s=int(time.time()) - 3600).status == 401
    bad = a.post_receipts({**good, "status": "LOST"})
    assert bad.status == 400 and "status must be one of" in bad.body["error"]

    accepted = a.post_receipts(good)
    assert (accepted.status, accepted.body) == (202, {"accepted": 1})

    def log_status(delivery_id: str) -> tuple | None:
        return pg_module.execute("SELECT status, status_provider, status_reported_at, status_reason "
                                 "FROM delivery_log WHERE delivery_id = %s", (delivery_id,)).fetchone()
    status = wait_for(lambda: (s := log_status(x)) and s[0] == "OPENED" and s, ARRIVAL_S,
                      "OPENED in delivery_log")
    assert status[1] == GATEWAY and int(status[2].timestamp() * 1000) == 1_750_000_060_000

    # An older receipt arriving late does not replace the newer status; checked once a later
    # receipt of the same user (same partition, so processed after it) is stored.
    late = {**good, "status": "DELIVERED", "reported_at": 1_750_000_000_000}
    marker = {**good, "delivery_id": f"marker-{x}", "status": "DELIVERED"}
    assert b.post_receipts([late, marker]).status == 202
    wait_for(lambda: pg_module.execute("SELECT 1 FROM delivery_receipts WHERE delivery_id = %s",
                                       (marker["delivery_id"],)).fetchone(), ARRIVAL_S, "the marker stored")
    assert log_status(x)[0] == "OPENED"
    stored = pg_module.execute("SELECT status FROM delivery_receipts WHERE delivery_id = %s", (x,))
    assert stored.fetchone() == ("OPENED",)

    # A receipt stored before its delivery's row: the row gets the status when it is written.
    early = Delivery(f"early-{x}", user, Channel.IN_APP, user, DeliveryKind.SINGLE, "billing",
                     Priority.NORMAL, "early", "early", (f"ev-{x}",), 1, (), None, "immediate",
                     int(time.time() * 1000), int(time.time() * 1000))
    assert a.post_receipts({**good, "delivery_id": early.delivery_id, "status": "FAILED",
                            "reason": "device unreachable"}).status == 202
    wait_for(lambda: pg_module.execute("SELECT 1 FROM delivery_receipts WHERE delivery_id = %s",
                                       (early.delivery_id,)).fetchone(), ARRIVAL_S,
             "the early receipt stored")
    topics = Topics(pipeline_env.prefix)
    codec = pipeline_codec(SchemaRegistryClient({"url": settings.registry_url}), topics)
    producer = Producer(admin_config(settings))
    producer.produce(topics.deliveries("in_app"), key=user.encode(),
                     value=codec.encode(f"{topics.deliveries('in_app')}-value", early.to_avro()))
    assert producer.flush(30) == 0
    early_status = wait_for(lambda: (s := log_status(early.delivery_id)) and s, ARRIVAL_S,
                            "the early delivery's row")
    assert (early_status[0], early_status[3]) == ("FAILED", "device unreachable")

    # What the worker's fallback will read: DeliveryStatus records keyed by the user, on the
    # partition number of the user's events.
    records = _receipts_on(settings, topics.receipts, user, 4)
    message, record = records[0]
    assert {k: record[k] for k in ("delivery_id", "user_id", "channel", "status", "provider", "reason",
                                   "reported_at")} == {
        "delivery_id": x, "user_id": user, "channel": "IN_APP", "status": "OPENED", "provider": GATEWAY,
        "reason": None, "reported_at": 1_750_000_060_000}
    assert record["received_at"] > 1_750_000_060_000
    client.send(user_id=user, category="system.probe", title="p", body="p", channels=["in_app"])
    client.flush()
    [event] = _messages_of(settings, topics.events, user, 1)
    assert {m.partition() for m, _ in records} == {event.partition()}


def test_the_stub_reports_delivered_and_in_bounce_mode_bounced(
        settings: StackSettings, connectors: list[str], worker: WorkerProcess,
        client: NotificationClient, watcher: Watcher, pg_module) -> None:
    """Through the stack's own parts: the test pipeline's HTTP sink posts to the provider stub,
    which reports to the stack's inbox service, whose receipts the stack's sink stores."""
    ok_user, bouncing = new_user("delivered"), new_user("bounced")
    before = worker.counter("preferences.stored")
    for user in (ok_user, bouncing):
        client.set_preferences(Preferences(user_id=user, channels={
            Channel.EMAIL: ChannelPreference(Channel.EMAIL, True, f"{user}@example.com")}))
    client.flush()
    wait_for(lambda: worker.counter("preferences.stored") >= before + 2, 30, "preferences stored")
    fault = {"channel": "email", "mode": "bounce", "match": f"{bouncing}@", "reason": "mailbox unknown",
             "times": 1}
    request = urllib.request.Request(f"{settings.stub_url}/faults", data=json.dumps(fault).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).close()
    for user in (ok_user, bouncing):
        client.send(user_id=user, category="billing", title="Invoice", body="due", channels=["email"])
    client.flush()
    emails = {user: watcher.wait_for_user(user, 1, "email")[0].delivery_id for user in (ok_user, bouncing)}

    def status(delivery_id: str) -> tuple | None:
        row = pg_module.execute("SELECT status, status_provider, status_reason FROM delivery_log "
                                "WHERE delivery_id = %s", (delivery_id,)).fetchone()
        return row if row and row[0] else None
    assert wait_for(lambda: status(emails[ok_user]), ARRIVAL_S, "DELIVERED") == ("DELIVERED", "stub", None)
    assert wait_for(lambda: status(emails[bouncing]), ARRIVAL_S, "BOUNCED") == (
        "BOUNCED", "stub", "mailbox unknown")
    stack_receipts = Topics(settings.topic_prefix).receipts
    [(message, record)] = _receipts_on(settings, stack_receipts, bouncing, 1)
    assert (record["delivery_id"], record["status"], record["channel"]) == (
        emails[bouncing], "BOUNCED", "EMAIL")
    assert InboxService(settings).healthy()
