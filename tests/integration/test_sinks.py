"""The Kafka Connect sinks on the real stack: JDBC into the PostgreSQL inbox and delivery log, the
project's HTTP sink into the provider stub, with the stub failing, rejecting, and Connect restarted.

The connectors registered here are the project's own configs (connectors/*.json) rendered for a
topic prefix of this module and registered under prefixed names, so the real pipeline's connectors
and topics are left alone. Rows land in the real inbox / delivery_log tables (that is what the
configs say) under delivery ids of this run, deleted afterwards. Stub faults only match this run's
records (`match` on a run marker), so other tests' traffic is not affected.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AclOperation, AdminClient, NewTopic

from stack.acls_setup import ensure_acls, remove_pipeline_acls
from stack.components import Connect
from stack.connectors_cli import replay_dlq
from stack.connectors_setup import apply_connector, connector_status, delete_connector, load_connectors
from stack.process import stop
from stack.schemas_setup import register_schemas, registry_client, schema_text
from stack.settings import StackSettings
from stack.topics_setup import ensure_topics
from streams.contracts.avro_codec import AvroCodec
from streams.contracts.topics import Topics
from streams.core.model import Channel, Delivery, DeliveryKind, DigestItem, Priority
from tests.integration.kafka_clients import admin_config, allowed
from tests.waiting import wait_for

RUN = uuid.uuid4().hex[:8]
PREFIX = f"sk{RUN}."
TOPICS = Topics(PREFIX)
HTTP_CHANNELS = (Channel.EMAIL, Channel.SMS, Channel.PUSH)
INBOX_COLUMNS = ("user_id", "kind", "category", "priority", "title", "body", "item_count", "event_ids",
                 "digest_key", "created_at", "first_occurred_at", "read_at")
LOG_COLUMNS = ("user_id", "channel", "address", "kind", "category", "priority", "title", "body",
               "item_count", "event_ids", "digest_key", "reason", "created_at", "first_occurred_at",
               "fallback_of")
ARRIVAL_S = 90  # generous: Connect on a busy 2-core box, consumer group joins included


@dataclass
class Sinks:
    """The module's scoped sinks: its topics, its connectors, a producer and the codec."""

    settings: StackSettings  # the stack's own settings (Connect, stub, Postgres addresses)
    scoped: StackSettings  # with this module's topic prefix
    names: dict[str, str]  # connector file name -> name registered for this module
    codec: AvroCodec
    producer: Producer

    def topic(self, channel: Channel) -> str:
        return TOPICS.deliveries(channel.key)

    def dlq(self, kind: str) -> str:
        return TOPICS.sink_dlq(kind)

    def produce(self, deliveries: list[Delivery]) -> dict[str, bytes]:
        """Produce in list order (key = user_id); returns delivery_id -> the value bytes written."""
        values: dict[str, bytes] = {}
        for d in deliveries:
            topic = self.topic(d.channel)
            value = self.codec.encode(f"{topic}-value", d.to_avro())
            self.producer.produce(topic, key=d.user_id.encode(), value=value)
            values[d.delivery_id] = value
        assert self.producer.flush(30) == 0
        return values


def _tasks_running(settings: StackSettings, names: list[str]) -> bool:
    rows = {row["name"]: row for row in connector_status(settings) if row["name"] in names}
    for row in rows.values():
        traces = [row["trace"], *(t["trace"] for t in row["tasks"])]
        if row["state"] == "FAILED" or any(t["state"] == "FAILED" for t in row["tasks"]):
            pytest.fail(f"connector {row['name']} failed:\n" + "\n".join(t for t in traces if t))
    return len(rows) == len(names) and all(
        row["state"] == "RUNNING" and row["tasks"] and all(t["state"] == "RUNNING" for t in row["tasks"])
        for row in rows.values())


@pytest.fixture(scope="module")
def sinks(settings: StackSettings, admin: AdminClient) -> Iterator[Sinks]:
    scoped = replace(settings, topic_prefix=PREFIX, partitions=4)
    ensure_acls(scoped, echo=lambda _: None)  # Connect reads and dead-letters this prefix's topics
    ensure_topics(scoped, echo=lambda _: None)
    register_schemas(scoped)
    codec = AvroCodec(registry_client(scoped))
    for channel in Channel:
        codec.add_subject(f"{TOPICS.deliveries(channel.key)}-value", schema_text("delivery.avsc"))
    names: dict[str, str] = {}
    try:
        # environ={}: the gateways are the stub whatever NOTIPIPE_*_GATEWAY_URL says.
        for name, config in load_connectors(scoped, environ={}):
            names[name] = f"{PREFIX}{name}"
            apply_connector(settings, names[name], config)
        wait_for(lambda: _tasks_running(settings, list(names.values())), 120, "the test connectors to run")
        producer = Producer(admin_config(settings))
        yield Sinks(settings, scoped, names, codec, producer)
    finally:
        for name in names.values():
            delete_connector(settings, name)
        with psycopg.connect(settings.postgres_dsn, autocommit=True) as conn:
            for table in ("inbox", "delivery_log"):
                conn.execute(f"DELETE FROM {table} WHERE delivery_id LIKE %s", (f"{RUN}-%",))
        topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(PREFIX)]
        if topics:
            for future in admin.delete_topics(topics).values():
                future.result(30)
        remove_pipeline_acls(scoped)
        groups = [f"connect-{name}" for name in names.values()]
        if groups:
            for future in admin.delete_consumer_groups(groups).values():
                with contextlib.suppress(Exception):  # a group that never formed is fine
                    future.result(30)
        client = registry_client(scoped)
        for channel in Channel:
            with contextlib.suppress(Exception):  # best effort
                client.delete_subject(f"{TOPICS.deliveries(channel.key)}-value")


# -- records -----------------------------------------------------------------------------------
BASE_MS = int(time.time() * 1000)


def delivery(channel: Channel, user: str, n: int, tag: str, digest: bool = False) -> Delivery:
    delivery_id = f"{RUN}-{tag}-{channel.key}-{user}-{n}"
    user_id = f"{RUN}-{tag}-{user}"
    items: tuple[DigestItem, ...] = ()
    event_ids: tuple[str, ...] = (f"{delivery_id}-e0",)
    if digest:
        event_ids = tuple(f"{delivery_id}-e{i}" for i in range(3))
        items = tuple(DigestItem(e, f"item {e}", f"body of {e}", BASE_MS - 1000 * i)
                      for i, e in enumerate(event_ids))
    return Delivery(
        delivery_id=delivery_id, user_id=user_id, channel=channel,
        address=user_id if channel is Channel.IN_APP else f"{user}@{tag}.example",
        kind=DeliveryKind.DIGEST if digest else DeliveryKind.SINGLE,
        category="social.like", priority=Priority.HIGH if n % 2 else Priority.NORMAL,
        title=f"{tag} title {n} ü", body=f"{tag} body {n} for {user}, with 'quotes' and \"more\"",
        event_ids=event_ids, item_count=len(event_ids), items=items,
        digest_key="likes" if digest else None, reason="digest_window" if digest else "immediate",
        created_at=BASE_MS + n, first_occurred_at=BASE_MS + n - 5000,
        fallback_of=f"{RUN}-{tag}-first-{user}-{n}" if n % 3 == 1 and not digest else None)


def as_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def expected_row(d: Delivery, columns: tuple[str, ...]) -> dict[str, Any]:
    avro = d.to_avro()
    row = {c: avro.get(c) for c in columns}
    for c in ("created_at", "first_occurred_at"):
        row[c] = as_datetime(avro[c])
    if "read_at" in columns:
        row["read_at"] = None
    return row


def rows(pg: psycopg.Connection, table: str, columns: tuple[str, ...], ids: list[str]) -> dict[str, dict]:
    found = pg.execute(f"SELECT delivery_id, {', '.join(columns)} FROM {table} WHERE delivery_id = ANY(%s)",
                       (ids,)).fetchall()
    return {r[0]: dict(zip(columns, r[1:], strict=True)) for r in found}


# -- the provider stub -----------------------------------------------------------------------------
def stub(settings: StackSettings, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{settings.stub_url}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def requests_for(settings: StackSettings, channel: Channel, ids: list[str]) -> list[dict]:
    """Requests the stub recorded for these delivery ids on the channel, oldest first."""
    wanted = set(ids)
    recorded = stub(settings, "GET", f"/requests?{urllib.parse.urlencode({'channel': channel.key})}")
    return [r for r in recorded["requests"] if wanted & set(r["delivery_ids"])]


def first_accepted(settings: StackSettings, channel: Channel, ids: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for request in requests_for(settings, channel, ids):
        if request["outcome"] == "accepted":
            out.setdefault(request["delivery_id"], request)
    return out


def wait_accepted(settings: StackSettings, channel: Channel, ids: list[str],
                  timeout_s: float = ARRIVAL_S) -> dict[str, dict]:
    return wait_for(lambda: (found := first_accepted(settings, channel, ids)) and len(found) == len(ids)
                    and found, timeout_s, f"{len(ids)} {channel.key} deliveries accepted by the stub")


def wait_rows(pg: psycopg.Connection, table: str, columns: tuple[str, ...], ids: list[str],
              timeout_s: float = ARRIVAL_S) -> dict[str, dict]:
    return wait_for(lambda: (found := rows(pg, table, columns, ids)) and len(found) == len(ids) and found,
                    timeout_s, f"{len(ids)} rows in {table}")


def consume_until(settings: StackSettings, topic: str, done: Callable[[list[Any]], bool],
                  timeout_s: float = 60) -> list[Any]:
    consumer = Consumer({**admin_config(settings),
                         "group.id": f"test-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    seen: list[Any] = []
    try:
        def poll() -> bool:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                seen.append(message)
            return done(seen)
        wait_for(poll, timeout_s, f"the expected records on {topic}", interval_s=0)
    finally:
        consumer.close()
    return seen


# -- tests ---------------------------------------------------------------------------------------
def test_every_delivery_topic_reaches_its_sink_with_the_right_content(sinks: Sinks, pg) -> None:
    by_channel = {ch: [delivery(ch, f"u{i}", i, "content") for i in range(3)]
                  + [delivery(ch, "u0", 7, "content", digest=True)] for ch in Channel}
    sinks.produce([d for ds in by_channel.values() for d in ds])
    everything = [d for ds in by_channel.values() for d in ds]
    in_app = by_channel[Channel.IN_APP]

    log = wait_rows(pg, "delivery_log", LOG_COLUMNS, [d.delivery_id for d in everything])
    assert log == {d.delivery_id: expected_row(d, LOG_COLUMNS) for d in everything}

    inbox = wait_rows(pg, "inbox", INBOX_COLUMNS, [d.delivery_id for d in in_app])
    assert inbox == {d.delivery_id: expected_row(d, INBOX_COLUMNS) for d in in_app}
    others = [d.delivery_id for ch in HTTP_CHANNELS for d in by_channel[ch]]
    assert rows(pg, "inbox", INBOX_COLUMNS, others) == {}, "only in-app deliveries belong in the inbox"

    for channel in HTTP_CHANNELS:
        sent = wait_accepted(sinks.settings, channel, [d.delivery_id for d in by_channel[channel]])
        for d in by_channel[channel]:
            request = sent[d.delivery_id]
            # The whole Delivery as plain JSON: enums as symbols, timestamps as epoch ms, digest
            # items as objects; the key providers dedupe on in Idempotency-Key.
            assert request["body"] == d.to_avro()
            assert request["path"] == f"/send/{channel.key}"
            assert request["headers"]["Idempotency-Key"] == d.delivery_id
            assert request["headers"]["Content-Type"] == "application/json"
            assert request["attempt"] == 1 and not request["duplicate"]
    in_app_requests = [r for ch in HTTP_CHANNELS for r in requests_for(sinks.settings, ch, [d.delivery_id
                                                                                            for d in in_app])]
    assert in_app_requests == [], "in-app deliveries are not sent to a gateway"


def test_the_same_records_produced_twice_make_no_duplicate_rows(sinks: Sinks, pg) -> None:
    tag = "dup"
    in_app = [delivery(Channel.IN_APP, "u", n, tag) for n in range(5)]
    email = [delivery(Channel.EMAIL, "u", n, tag) for n in range(5)]
    in_app_ids, email_ids = [d.delivery_id for d in in_app], [d.delivery_id for d in email]
    first = sinks.produce(in_app + email)
    wait_rows(pg, "inbox", INBOX_COLUMNS, in_app_ids)
    wait_rows(pg, "delivery_log", LOG_COLUMNS, in_app_ids + email_ids)
    wait_accepted(sinks.settings, Channel.EMAIL, email_ids)

    # The app marks one read; the sink must never touch that column.
    pg.execute("UPDATE inbox SET read_at = now() WHERE delivery_id = %s", (in_app_ids[0],))
    read_at, stored_at = pg.execute("SELECT read_at, stored_at FROM inbox WHERE delivery_id = %s",
                                    (in_app_ids[0],)).fetchone()

    # The same bytes again, then one new record per channel behind them on the same partition
    # (same user): once it has arrived, the repeats before it were processed.
    again = sinks.produce(in_app + email)
    assert again == first
    sentinels = [delivery(Channel.IN_APP, "u", 99, tag), delivery(Channel.EMAIL, "u", 99, tag)]
    sinks.produce(sentinels)
    wait_rows(pg, "inbox", INBOX_COLUMNS, [sentinels[0].delivery_id])
    wait_rows(pg, "delivery_log", LOG_COLUMNS, [s.delivery_id for s in sentinels])
    wait_accepted(sinks.settings, Channel.EMAIL, [sentinels[1].delivery_id])

    counts = dict(pg.execute("SELECT 'inbox', count(*) FROM inbox WHERE delivery_id = ANY(%s) UNION ALL "
                             "SELECT 'log', count(*) FROM delivery_log WHERE delivery_id = ANY(%s)",
                             (in_app_ids, in_app_ids + email_ids)).fetchall())
    assert counts == {"inbox": 5, "log": 10}
    assert pg.execute("SELECT read_at, stored_at FROM inbox WHERE delivery_id = %s",
                      (in_app_ids[0],)).fetchone() == (read_at, stored_at)
    # The HTTP sink sends a repeat again (it cannot know it was sent), with the same idempotency
    # key, which is what lets a provider (and the stub: duplicate=true) drop it.
    for delivery_id in email_ids:
        accepted = [r for r in requests_for(sinks.settings, Channel.EMAIL, [delivery_id])
                    if r["outcome"] == "accepted"]
        assert [r["headers"]["Idempotency-Key"] for r in accepted] == [delivery_id, delivery_id]
        assert [r["duplicate"] for r in accepted] == [False, True]


def test_gateway_failing_for_20s_then_recovering_delivers_everything_in_order_per_user(sinks: Sinks) -> None:
    tag = "outage"
    fault = stub(sinks.settings, "POST", "/faults", {"channel": "sms", "mode": "error", "status": 503,
                                                     "duration_s": 20, "match": f"{RUN}-{tag}-"})
    users = [f"u{i}" for i in range(6)]
    records = [delivery(Channel.SMS, user, n, tag) for n in range(5) for user in users]
    ids = [d.delivery_id for d in records]
    sinks.produce(records)

    def errors() -> list[dict]:
        return [r for r in requests_for(sinks.settings, Channel.SMS, ids) if r["outcome"] == "error"]

    failed = wait_for(errors, ARRIVAL_S, "the sink to hit the failing gateway")
    assert all(r["fault"]["id"] == fault["id"] and r["status"] == 503 for r in failed)

    accepted = wait_accepted(sinks.settings, Channel.SMS, ids, timeout_s=20 + ARRIVAL_S)
    # Nothing got through while the gateway failed: every failed attempt came before every
    # accepted one (the stub's seq is its arrival order).
    assert max(r["seq"] for r in errors()) < min(r["seq"] for r in accepted.values())
    # Per user, accepted in the order produced (the stub's seq is its arrival order).
    order: dict[str, list[int]] = defaultdict(list)
    for request in sorted(accepted.values(), key=lambda r: r["seq"]):
        order[request["body"]["user_id"]].append(int(request["delivery_id"].rsplit("-", 1)[1]))
    assert dict(order) == {f"{RUN}-{tag}-{user}": list(range(5)) for user in users}
    # Retried, never given up on (a dead-lettered record would have no accepted request above).
    attempts = requests_for(sinks.settings, Channel.SMS, ids)
    assert {r["outcome"] for r in attempts} == {"error", "accepted"}


def test_a_record_the_gateway_rejects_for_good_lands_in_the_sink_dlq(sinks: Sinks) -> None:
    tag = "reject"
    good1, bad, good2 = (delivery(Channel.PUSH, "u", n, tag) for n in range(3))
    stub(sinks.settings, "POST", "/faults", {"channel": "push", "mode": "reject", "status": 422,
                                             "match": bad.delivery_id, "times": 1})
    values = sinks.produce([good1, bad, good2])

    accepted = wait_accepted(sinks.settings, Channel.PUSH, [good1.delivery_id, good2.delivery_id])
    rejected = requests_for(sinks.settings, Channel.PUSH, [bad.delivery_id])
    assert [(r["outcome"], r["status"]) for r in rejected] == [("rejected", 422)], "a 4xx is not retried"
    assert accepted[good1.delivery_id]["seq"] < rejected[0]["seq"] < accepted[good2.delivery_id]["seq"]

    def headers(message: Any) -> dict[str, str]:
        return {k: (v or b"").decode() for k, v in message.headers() or []}

    def found(messages: list[Any]) -> bool:
        return any(m.value() == values[bad.delivery_id] for m in messages)

    dead = [m for m in consume_until(sinks.settings, sinks.dlq("http"), found)
            if m.value() == values[bad.delivery_id]]
    assert len(dead) == 1
    errors = headers(dead[0])
    assert dead[0].key() == bad.user_id.encode()
    assert errors["__connect.errors.topic"] == sinks.topic(Channel.PUSH)
    assert errors["__connect.errors.connector.name"] == sinks.names["http-push"]
    assert errors["__connect.errors.exception.class.name"] == \
        "io.notipipe.connect.http.DeliveryFailedException"
    assert "422" in errors["__connect.errors.exception.message"]
    assert "permanent" in errors["__connect.errors.exception.message"]
    assert int(errors["__connect.errors.offset"]) >= 0

    # The cause is gone (the fault answered once); a replay sends the dead letter back to its
    # topic and partition, and the sink delivers it. A second replay finds nothing new.
    replayed = replay_dlq(sinks.scoped, sinks.dlq("http"), connector=sinks.names["http-push"],
                          echo=lambda _: None)
    assert [letter.value for letter in replayed] == [values[bad.delivery_id]]
    assert wait_accepted(sinks.settings, Channel.PUSH, [bad.delivery_id])[bad.delivery_id]["body"] == \
        bad.to_avro()
    assert replay_dlq(sinks.scoped, sinks.dlq("http"), echo=lambda _: None) == []


def test_without_a_dlq_a_rejected_record_fails_the_task_and_status_shows_why(sinks: Sinks, admin) -> None:
    tag = "nodlq"
    name, config = next((n, c) for n, c in load_connectors(sinks.scoped, environ={}) if n == "http-sms")
    topic = f"{PREFIX}{tag}"
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    broken = {k: v for k, v in config.items() if not k.startswith("errors.")}
    broken["topics"] = topic
    connector = f"{PREFIX}{tag}"
    bad = delivery(Channel.SMS, "u", 0, tag)
    stub(sinks.settings, "POST", "/faults", {"channel": "sms", "mode": "reject", "status": 400,
                                             "match": bad.delivery_id, "times": 1})
    with allowed(admin, "connect", AclOperation.READ, topic):  # the test's own topic
        apply_connector(sinks.settings, connector, broken)
        try:
            value = sinks.codec.encode(f"{sinks.topic(Channel.SMS)}-value", bad.to_avro())
            sinks.producer.produce(topic, key=bad.user_id.encode(), value=value)
            sinks.producer.flush(30)

            def task_failed() -> bool:
                return any(row["name"] == connector and any(t["state"] == "FAILED" for t in row["tasks"])
                           for row in connector_status(sinks.settings))
            wait_for(task_failed, ARRIVAL_S, f"{connector}'s task to fail")
            result = subprocess.run([sys.executable, "-m", "stack.connectors_cli", "status", connector],
                                    capture_output=True, text=True)
            assert result.returncode == 1, result.stdout + result.stderr
            assert "FAILED" in result.stdout
            assert "no dead-letter queue is configured" in result.stdout
            assert "answered 400" in result.stdout
        finally:
            delete_connector(sinks.settings, connector)


def test_connect_restarted_mid_stream_loses_nothing(sinks: Sinks, settings: StackSettings, pg) -> None:
    tag = "restart"
    users = [f"u{i}" for i in range(8)]
    channels = (Channel.EMAIL, Channel.IN_APP)
    # Slow answers keep the email stream in flight when Connect goes down.
    stub(settings, "POST", "/faults", {"channel": "email", "mode": "slow", "delay_ms": 500,
                                       "duration_s": 30, "match": f"{RUN}-{tag}-"})
    first = [delivery(ch, user, n, tag) for n in range(12) for user in users for ch in channels]
    second = [delivery(ch, user, n, tag) for n in range(12, 16) for user in users for ch in channels]
    email_ids = [d.delivery_id for d in first + second if d.channel is Channel.EMAIL]
    in_app_ids = [d.delivery_id for d in first + second if d.channel is Channel.IN_APP]
    sinks.produce(first)
    wait_for(lambda: len(first_accepted(settings, Channel.EMAIL, email_ids)) >= 5, ARRIVAL_S,
             "the email stream to be under way")

    connect = Connect(settings)
    assert stop(connect.pid_file, timeout_s=60)
    done_at_stop = len(first_accepted(settings, Channel.EMAIL, email_ids))
    assert done_at_stop < len(first) // 2, "the email stream had finished before Connect stopped"
    try:
        sinks.produce(second)  # while Connect is down
    finally:
        connect.start()
    wait_for(lambda: _tasks_running(settings, list(sinks.names.values())), 120, "the connectors to run again")

    wait_accepted(settings, Channel.EMAIL, email_ids, timeout_s=2 * ARRIVAL_S)
    wait_rows(pg, "inbox", INBOX_COLUMNS, in_app_ids, timeout_s=2 * ARRIVAL_S)
    wait_rows(pg, "delivery_log", LOG_COLUMNS, email_ids + in_app_ids, timeout_s=2 * ARRIVAL_S)
    # At least once: a record whose offset was not committed before the stop may be sent again,
    # always with its own idempotency key.
    for request in requests_for(settings, Channel.EMAIL, email_ids):
        assert request["headers"]["Idempotency-Key"] == request["delivery_id"]
