"""No address, title or body in any log line of any component.

The pipeline runs for real (a worker process, the project's connectors registered for this module's
topic prefix, the provider stub, PostgreSQL) with values unique to this run: one notification that
is delivered, one the gateway rejects (HTTP sink DLQ), two that fail validation (one of them with a
NUL character, which PostgreSQL cannot store) and one that is not Avro at all (worker DLQ), a
delivery with a NUL character written straight to a delivery topic (it stops the JDBC sinks, whose
errors must not quote it), and CLI commands that fail on such values or print dead letters. Once
every one of them has been handled, and the logs show it, every log under the stack's log folder,
the worker's log and the CLI's output are searched for the values. The stack's generated secrets
are searched for too.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import replace

import psycopg
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from stack.connectors_setup import apply_connector, connector_status, delete_connector, load_connectors
from stack.schemas_setup import registry_client, schema_text
from stack.secrets import secrets_dir
from stack.settings import StackSettings
from streams.client.sdk import NotificationClient, now_ms
from streams.contracts.avro_codec import AvroCodec
from streams.contracts.schemas import subject_for
from streams.core.model import (
    Channel,
    ChannelPreference,
    Delivery,
    DeliveryKind,
    Event,
    Preferences,
    Priority,
)
from tests.integration.kafka_clients import admin_config
from tests.integration.pipeline import PipelineEnv, Watcher, WorkerProcess
from tests.waiting import wait_for

RUN = uuid.uuid4().hex[:10]
CASES = ("ok", "rej", "inv", "nul", "raw", "jdbc", "cli")
ROUTER_ENV = {"NOTIPIPE_DEFAULT_CHANNELS": "in_app,email", "NOTIPIPE_THROTTLE_LIMIT": "100",
              "NOTIPIPE_DIGEST_CATEGORIES": "social.like"}
ARRIVAL_S = 120


def marker(case: str, part: str) -> str:
    return f"pii{RUN}{case}{part}"


def address(case: str) -> str:
    return f"{marker(case, 'addr')}@mail.example"


def title(case: str) -> str:
    return f"Hello {marker(case, 'title')}"


def body(case: str) -> str:
    return f"Dear {marker(case, 'body')}, see you"


def user(case: str) -> str:
    return f"u{RUN}{case}"


MARKERS = [marker(case, part) for case in CASES for part in ("addr", "title", "body")]


@pytest.fixture(scope="module")
def sinks(settings: StackSettings, pipeline_env: PipelineEnv, admin: AdminClient) -> Iterator[list[str]]:
    """The project's connectors, reading this module's topics."""
    scoped = replace(settings, topic_prefix=pipeline_env.prefix)
    names = []
    try:
        for name, config in load_connectors(scoped, environ={}):
            names.append(f"{pipeline_env.prefix}{name}")
            apply_connector(settings, names[-1], config)

        def running() -> bool:
            rows = [r for r in connector_status(settings) if r["name"] in names]
            return len(rows) == len(names) and all(
                r["state"] == "RUNNING" and r["tasks"] and all(t["state"] == "RUNNING" for t in r["tasks"])
                for r in rows)
        wait_for(running, ARRIVAL_S, "the module's connectors to run")
        yield names
    finally:
        for name in names:
            delete_connector(settings, name)
        with psycopg.connect(settings.postgres_dsn, autocommit=True) as conn:
            for table in ("inbox", "delivery_log"):
                conn.execute(f"DELETE FROM {table} WHERE user_id = ANY(%s)", ([user(c) for c in CASES],))
        for future in admin.delete_consumer_groups([f"connect-{n}" for n in names]).values():
            with contextlib.suppress(Exception):  # a group that never formed is fine
                future.result(30)


def set_prefs(worker: WorkerProcess, client: NotificationClient, case: str) -> None:
    before = worker.counters().get("preferences.stored", 0)
    client.set_preferences(Preferences(user_id=user(case), updated_at=now_ms(), channels={
        Channel.IN_APP: ChannelPreference(Channel.IN_APP),
        Channel.EMAIL: ChannelPreference(Channel.EMAIL, True, address(case))}))
    client.flush()
    wait_for(lambda: worker.counters().get("preferences.stored", 0) > before, 30,
             "the worker to store the preferences")


def stub_requests(settings: StackSettings, case: str) -> list[dict]:
    query = urllib.parse.urlencode({"channel": "email"})
    with urllib.request.urlopen(f"{settings.stub_url}/requests?{query}", timeout=10) as response:
        rows = json.load(response)["requests"]
    return [r for r in rows if isinstance(r["body"], dict) and r["body"].get("user_id") == user(case)]


def dead_letters(settings: StackSettings, topic: str, key: str, timeout_s: float = ARRIVAL_S) -> list:
    """The records of `topic` whose key is `key`, waiting until there is one."""
    consumer = Consumer({**admin_config(settings),
                         "group.id": f"pii-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    found: list = []
    try:
        def poll() -> bool:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None and message.key() == key.encode():
                found.append(message)
            return bool(found)
        wait_for(poll, timeout_s, f"a dead letter of {key} on {topic}", interval_s=0)
    finally:
        consumer.close()
    return found


def errors_of(message) -> dict[str, str]:
    prefix = "__connect.errors."
    return {k[len(prefix):]: (v or b"").decode() for k, v in message.headers() or [] if k.startswith(prefix)}


def cli(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run([sys.executable, "-m", "streams.cli", *args], env={**os.environ, **env},
                            capture_output=True, text=True, timeout=120)
    return f"notipipe {args[0]} -> exit {result.returncode}\n{result.stdout}{result.stderr}"


def test_no_address_title_or_body_reaches_a_log(settings: StackSettings, pipeline_env: PipelineEnv,
                                                worker: WorkerProcess, client: NotificationClient,
                                                watcher: Watcher, sinks: list[str], pg) -> None:
    prefix = pipeline_env.prefix
    events_topic = f"{prefix}notifications.events"
    for case in ("ok", "rej"):
        set_prefs(worker, client, case)
    with urllib.request.urlopen(urllib.request.Request(
            f"{settings.stub_url}/faults", method="POST", headers={"Content-Type": "application/json"},
            data=json.dumps({"channel": "email", "mode": "reject", "status": 422, "match": user("rej"),
                             "times": 1}).encode()), timeout=10):
        pass

    # Delivered by email and into the inbox; rejected by the gateway for good.
    for case in ("ok", "rej"):
        client.send(user_id=user(case), category="billing", title=title(case), body=body(case))
    # Fail validation (no category; a NUL character): straight from the codec, as a faulty
    # producer would send them (the SDK validates before sending).
    for case, category, text in (("inv", "", title("inv")), ("nul", "billing", title("nul") + "\x00")):
        invalid = Event(event_id=str(uuid.uuid4()), user_id=user(case), category=category,
                        occurred_at=now_ms(), title=text, body=body(case))
        client.send_raw(events_topic, user(case),
                        client.codec.encode(subject_for(events_topic), invalid.to_avro()))
    # Not Avro at all, the values in plain text.
    plain = json.dumps({"to": address("raw"), "title": title("raw"), "body": body("raw")})
    client.send_raw(events_topic, user("raw"), plain.encode())
    client.flush()

    accepted = wait_for(lambda: [r for r in stub_requests(settings, "ok") if r["outcome"] == "accepted"],
                        ARRIVAL_S, "the email to reach the gateway")
    assert accepted[0]["body"]["address"] == address("ok")
    wait_for(lambda: pg.execute("SELECT title FROM inbox WHERE user_id = %s", (user("ok"),)).fetchall(),
             ARRIVAL_S, "the inbox row")
    rejected = dead_letters(settings, f"{prefix}notifications.sink-dlq.http", user("rej"))[0]
    keys = {user(case).encode() for case in ("inv", "nul", "raw")}
    worker_dlq = wait_for(lambda: (found := [r for r, _ in watcher.dead_letters if r["key"] in keys])
                          and len(found) == 3 and found, ARRIVAL_S, "the worker's three dead letters")
    assert sorted(r["reason"] for r in worker_dlq) == ["invalid", "invalid", "undecodable"]
    assert any("nul_character" in r["error"] for r in worker_dlq)

    # A NUL character PostgreSQL cannot store, past the worker: the JDBC sinks stop on it (they do
    # not dead-letter), and their errors, in Connect's log and the task's trace, must not quote it.
    in_app_topic = f"{prefix}notifications.deliveries.in_app"
    codec = AvroCodec(registry_client(settings))
    codec.add_subject(f"{in_app_topic}-value", schema_text("delivery.avsc"))
    poison = Delivery(
        delivery_id=f"pii-{RUN}", user_id=user("jdbc"), channel=Channel.IN_APP, address=address("jdbc"),
        kind=DeliveryKind.SINGLE, category="billing", priority=Priority.NORMAL,
        title=title("jdbc") + "\x00", body=body("jdbc"), event_ids=(f"pii-{RUN}-e",), item_count=1, items=(),
        digest_key=None, reason="immediate", created_at=now_ms(), first_occurred_at=now_ms())
    # Written as the stack's admin: no client principal may write a delivery topic.
    writer = Producer(admin_config(settings))
    writer.produce(in_app_topic, key=user("jdbc").encode(),
                   value=codec.encode(f"{in_app_topic}-value", poison.to_avro()))
    assert writer.flush(30) == 0
    jdbc_sinks = {f"{prefix}jdbc-inbox", f"{prefix}jdbc-delivery-log"}

    def jdbc_failed() -> list[str]:
        traces = [t["trace"] for r in connector_status(settings) if r["name"] in jdbc_sinks
                  for t in r["tasks"] if t["state"] == "FAILED"]
        return traces if len(traces) == 2 else []
    traces = wait_for(jdbc_failed, ARRIVAL_S, "the JDBC sinks to stop on the NUL character")
    assert all("invalid byte sequence" in t for t in traces)

    # The logs did record each of these (so their silence about the values means something).
    connect_log = settings.log_dir / "connect.log"
    where = errors_of(rejected)
    position = f"record {where['topic']}-{where['partition']}@{where['offset']}"
    wait_for(lambda: f"{position} sent to the dead-letter queue" in connect_log.read_text(errors="replace"),
             30, "the HTTP sink to log the dead letter")
    wait_for(lambda: connect_log.read_text(errors="replace").count(
        f"WorkerSinkTask{{id={prefix}jdbc-") >= 2, 30, "Connect to log the JDBC sinks' failure")
    for record in worker_dlq:
        source = f"{record['source_topic']}/{record['source_partition']}/{record['source_offset']}"
        line = f"dead-lettered {source}"
        wait_for(lambda line=line: line in worker.log.read_text(errors="replace"), 30,
                 "the worker to log its dead letter")

    # CLI commands that fail on such values or show dead letters.
    cli_env = {"NOTIPIPE_TOPIC_PREFIX": prefix, "NOTIPIPE_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
               "NOTIPIPE_REGISTRY_URL": settings.registry_url}
    outputs = [
        cli("send", "--user", user("cli"), "--category", "", "--title", title("cli"), "--body", body("cli"),
            env=cli_env),
        cli("prefs", "set", "--user", user("cli"), "--address", f"email={address('cli')}",
            "--tz", "Nowhere/X", env=cli_env),
        cli("connectors", "replay-dlq", f"{prefix}notifications.sink-dlq.http", "--dry-run", env=cli_env),
        cli("connectors", "status", "--full", env=cli_env),
    ]
    assert "would replay 1 record" in outputs[2], outputs[2]

    logs = sorted(p for p in settings.log_dir.rglob("*") if p.is_file()) + [worker.log]
    texts = {str(p): p.read_text(errors="replace") for p in logs}
    texts.update({f"cli output {i}": out for i, out in enumerate(outputs)})
    texts["task traces"] = "\n".join(traces)
    leaks = [f"{name}: {line.strip()[:300]}" for name, text in texts.items() for line in text.splitlines()
             if any(m in line for m in MARKERS)]
    assert not leaks, "personal data in logs:\n" + "\n".join(leaks[:20])
    secrets = [p.read_text().strip() for p in secrets_dir(settings).iterdir()
               if p.is_file() and "." not in p.name]
    assert secrets
    exposed = [name for name, text in texts.items() if any(s in text for s in secrets)]
    assert not exposed, f"a generated secret is in {exposed}"


def test_the_database_server_logs_errors_without_row_values(settings: StackSettings, pg) -> None:
    log = settings.log_dir / "postgres.log"
    value = marker("db", "title")
    with pytest.raises(psycopg.errors.NotNullViolation):
        pg.execute("INSERT INTO inbox (delivery_id, user_id, kind, category, priority, title, body, "
                   "item_count, event_ids, reason, created_at, first_occurred_at) VALUES "
                   "(%s, 'u', 'SINGLE', 'c', 'NORMAL', %s, NULL, 1, '{e}', 'immediate', now(), now())",
                   (f"pii-{RUN}", value))
    def logged() -> str:
        text = log.read_text(errors="replace")
        return text if "violates not-null constraint" in text else ""

    text = wait_for(logged, 30, "the server to log the error")
    assert value not in text, "no DETAIL 'Failing row contains (...)' and no statement text"
