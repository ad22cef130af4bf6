"""The stack's locks, tried on the real servers: who may write to the registry, call Connect's REST
API, connect to PostgreSQL as which role, and what a gateway that refuses the HTTP sink does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import replace

import psycopg
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AclOperation, AdminClient, NewTopic
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from psycopg.conninfo import make_conninfo

from stack.components import Connect, Postgres
from stack.connectors_setup import (
    apply_connector,
    connector_status,
    delete_connector,
    load_connectors,
    restart_connector,
)
from stack.process import stop
from stack.schemas_setup import SchemaRegistrationError, register_schemas, registry_client, schema_text
from stack.secrets import secrets_dir
from stack.settings import StackSettings
from streams.connection import postgres
from streams.connection.credentials import BasicAuth
from streams.contracts.avro_codec import AvroCodec
from streams.core.model import Channel, Delivery, DeliveryKind, Priority
from tests.integration.kafka_clients import admin_config, allowed
from tests.waiting import wait_for

RUN = uuid.uuid4().hex[:8]
PROBE = {"type": "record", "name": "SecurityProbe", "namespace": "test.notipipe",
         "fields": [{"name": "id", "type": "string"}]}


def http_status(url: str, method: str = "GET", body: dict | None = None,
                headers: dict[str, str] | None = None) -> int:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": BasicAuth(user, password).header()}


# -- schema registry ---------------------------------------------------------------------------------
def test_registry_reads_are_open_and_writes_need_the_writer(settings: StackSettings) -> None:
    subject = f"test-sec-{RUN}-value"
    anonymous = SchemaRegistryClient({"url": settings.registry_url})
    writer = registry_client(settings)
    with pytest.raises(SchemaRegistryError) as refused:
        anonymous.register_schema(subject, Schema(json.dumps(PROBE), "AVRO"))
    assert refused.value.http_status_code == 401
    wrong = SchemaRegistryClient({"url": settings.registry_url,
                                  "basic.auth.user.info": "notipipe-schemas:wrong"})
    with pytest.raises(SchemaRegistryError) as refused:
        wrong.register_schema(subject, Schema(json.dumps(PROBE), "AVRO"))
    assert refused.value.http_status_code == 401

    schema_id = writer.register_schema(subject, Schema(json.dumps(PROBE), "AVRO"))
    try:
        writer.set_compatibility(subject_name=subject, level="BACKWARD_TRANSITIVE")
        # What the worker, the SDK and Connect's converter do: read, without credentials.
        assert json.loads(anonymous.get_schema(schema_id).schema_str)["name"] == "SecurityProbe"
        assert anonymous.lookup_schema(subject, Schema(json.dumps(PROBE), "AVRO")).schema_id == schema_id
        with pytest.raises(SchemaRegistryError) as refused:
            anonymous.set_compatibility(subject_name=subject, level="NONE")
        assert refused.value.http_status_code == 401
        # The writer may change a subject's rule, not the registry-wide one (sr-developer, not admin).
        with pytest.raises(SchemaRegistryError) as refused:
            writer.set_compatibility(level="NONE")
        assert refused.value.http_status_code == 403
    finally:
        writer.delete_subject(subject, permanent=False)


def test_registering_schemas_with_a_wrong_password_says_which_variables(settings: StackSettings,
                                                                      monkeypatch) -> None:
    monkeypatch.setenv("NOTIPIPE_REGISTRY_PASSWORD", "wrong")
    with pytest.raises(SchemaRegistrationError, match="NOTIPIPE_REGISTRY_PASSWORD") as refused:
        register_schemas(replace(settings, topic_prefix=f"sec{RUN}."))
    assert "401" in str(refused.value)


# -- Kafka Connect's REST API --------------------------------------------------------------------------
def test_connect_refuses_calls_without_the_right_credentials(settings: StackSettings) -> None:
    url = f"{settings.connect_url}/connectors/sec-{RUN}/config"
    config = {"connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
              "topics": "notifications.events", "file": "/tmp/stolen"}
    assert http_status(url, "PUT", config) == 401
    assert http_status(url, "PUT", config, basic("notipipe-connect", "wrong")) == 401
    assert http_status(f"{settings.connect_url}/connectors", headers=basic("admin", "admin")) == 401
    assert http_status(f"{settings.connect_url}/connectors") == 401
    names = [row["name"] for row in connector_status(settings)]  # the stack's own credentials
    assert f"sec-{RUN}" not in names and "jdbc-inbox" in names
    assert Connect(settings).healthy()


def test_the_connectors_cli_reports_refused_credentials_clearly(settings: StackSettings) -> None:
    env = {**os.environ, "NOTIPIPE_CONNECT_PASSWORD": "wrong"}
    result = subprocess.run([sys.executable, "-m", "streams.cli", "connectors", "status"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "refused the credentials (401)" in result.stderr
    assert "NOTIPIPE_CONNECT_PASSWORD" in result.stderr


# -- PostgreSQL --------------------------------------------------------------------------------------
def connect_as(settings: StackSettings, user: str, password: str) -> psycopg.Connection:
    return psycopg.connect(make_conninfo(host="127.0.0.1", port=str(settings.postgres_port),
                                         dbname="notipipe", user=user, password=password,
                                         connect_timeout="10"), autocommit=True)


def test_postgres_refuses_unknown_roles_and_wrong_passwords_on_every_path(settings: StackSettings) -> None:
    sink_password = postgres.password(settings, postgres.SINK)
    for user, password in [(f"nobody_{RUN}", "x"), (postgres.SINK.name, "wrong"),
                           (postgres.OWNER.name, "wrong"), (postgres.OWNER.name, "")]:
        with pytest.raises(psycopg.OperationalError, match="password authentication failed|no password"):
            connect_as(settings, user, password).close()
    # The server's socket trusts nobody either (initdb used to make local connections trusted).
    socket_dir = settings.data_dir / "postgres"
    with pytest.raises(psycopg.OperationalError, match="password authentication failed|no password"):
        psycopg.connect(host=str(socket_dir), port=settings.postgres_port, dbname="notipipe",
                        user=postgres.OWNER.name, password="wrong").close()
    with connect_as(settings, postgres.SINK.name, sink_password) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (postgres.SINK.name,)


def test_stack_up_with_a_wrong_owner_password_says_which_variable(settings: StackSettings) -> None:
    env = {**os.environ, "NOTIPIPE_POSTGRES_PASSWORD": "wrong"}
    result = subprocess.run([sys.executable, "-m", "streams.cli", "stack", "up", "--only", "postgres"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "password authentication failed" in result.stderr
    assert "NOTIPIPE_POSTGRES_PASSWORD" in result.stderr and "wrong" not in result.stderr.replace(
        "NOTIPIPE_POSTGRES_PASSWORD", "")


def test_the_sink_role_writes_rows_and_nothing_else(settings: StackSettings, pg) -> None:
    with connect_as(settings, postgres.SINK.name, postgres.password(settings, postgres.SINK)) as sink:
        for statement in ("ALTER TABLE inbox ADD COLUMN stolen text",
                          "ALTER TABLE delivery_log DROP COLUMN body",
                          "DROP TABLE inbox",
                          "TRUNCATE delivery_log",
                          "DELETE FROM inbox",
                          "CREATE TABLE sec_probe (x int)",
                          "CREATE TEMP TABLE sec_probe (x int)",
                          "UPDATE inbox SET read_at = now() WHERE false",
                          "SELECT * FROM schema_migrations"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                sink.execute(statement)
        delivery_id = f"sec-{RUN}"
        sink.execute("INSERT INTO inbox (delivery_id, user_id, kind, category, priority, title, body, "
                     "item_count, event_ids, reason, created_at, first_occurred_at) VALUES "
                     "(%s, 'u', 'SINGLE', 'c', 'NORMAL', 't', 'b', 1, '{e}', 'immediate', now(), now()) "
                     "ON CONFLICT (delivery_id) DO UPDATE SET title = EXCLUDED.title", (delivery_id,))
    try:
        assert pg.execute("SELECT title FROM inbox WHERE delivery_id = %s",
                          (delivery_id,)).fetchone() == ("t",)
    finally:
        pg.execute("DELETE FROM inbox WHERE delivery_id = %s", (delivery_id,))


def test_the_read_role_reads_the_inbox_and_marks_it_read_only(settings: StackSettings, pg) -> None:
    delivery_id = f"sec-read-{RUN}"
    pg.execute("INSERT INTO inbox (delivery_id, user_id, kind, category, priority, title, body, item_count, "
               "event_ids, reason, created_at, first_occurred_at) VALUES "
               "(%s, 'u', 'SINGLE', 'c', 'NORMAL', 't', 'b', 1, '{e}', 'immediate', now(), now())",
               (delivery_id,))
    try:
        with connect_as(settings, postgres.READER.name,
                        postgres.password(settings, postgres.READER)) as reader:
            assert reader.execute("SELECT title FROM inbox WHERE delivery_id = %s",
                                  (delivery_id,)).fetchone() == ("t",)
            reader.execute("UPDATE inbox SET read_at = now() WHERE delivery_id = %s", (delivery_id,))
            for statement in ("UPDATE inbox SET title = 'x' WHERE false",
                              "INSERT INTO inbox (delivery_id) VALUES ('x')",
                              "DELETE FROM inbox WHERE false",
                              "SELECT * FROM delivery_log",
                              "CREATE TABLE sec_probe (x int)"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    reader.execute(statement)
        assert pg.execute("SELECT read_at IS NOT NULL FROM inbox WHERE delivery_id = %s",
                          (delivery_id,)).fetchone() == (True,)
    finally:
        pg.execute("DELETE FROM inbox WHERE delivery_id = %s", (delivery_id,))


# -- a gateway refusing the HTTP sink's credentials ---------------------------------------------------
def test_the_stub_refuses_sends_without_the_channels_token(settings: StackSettings) -> None:
    url = f"{settings.stub_url}/send/email"
    body = {"delivery_id": f"sec-{RUN}-direct"}
    assert http_status(url, "POST", body) == 401
    assert http_status(url, "POST", body, {"Authorization": "Bearer wrong"}) == 401
    with urllib.request.urlopen(f"{settings.stub_url}/requests?delivery_id=sec-{RUN}-direct",
                                timeout=10) as response:
        recorded = json.load(response)["requests"]
    assert [(r["outcome"], r["status"]) for r in recorded] == [("unauthorized", 401)] * 2
    assert recorded[1]["headers"]["Authorization"] == "(redacted)"


@pytest.fixture
def refusal_setup(settings: StackSettings, admin: AdminClient) -> Iterator[dict]:
    """A topic, its DLQ topic, a secrets file of the test's own, and the connector's name."""
    topic, dlq = f"sec{RUN}.email", f"sec{RUN}.dlq"
    for name in (topic, dlq):
        admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result(30)
    secrets_file = secrets_dir(settings) / f"test-{RUN}.properties"
    connector = f"sec{RUN}-http-email"
    try:
        # Connect reads the test's topic and dead-letters into its DLQ topic: its ACLs for them.
        with allowed(admin, "connect", AclOperation.READ, topic), \
                allowed(admin, "connect", AclOperation.WRITE, dlq):
            yield {"topic": topic, "dlq": dlq, "secrets_file": secrets_file, "connector": connector}
    finally:
        delete_connector(settings, connector)
        secrets_file.unlink(missing_ok=True)
        for future in admin.delete_topics([topic, dlq]).values():
            future.result(30)
        registry_client(settings).delete_subject(f"{topic}-value", permanent=False)


def test_a_refused_gateway_token_fails_the_task_dead_letters_nothing_and_a_fix_resumes(
        settings: StackSettings, refusal_setup: dict) -> None:
    topic, dlq, secrets_file, connector = (refusal_setup[k] for k in ("topic", "dlq", "secrets_file",
                                                                      "connector"))
    config = dict(load_connectors(settings, environ={}))["http-email"]
    config.update({"topics": topic, "errors.deadletterqueue.topic.name": dlq})

    def stub_outcomes(delivery_id: str) -> list[str]:
        with urllib.request.urlopen(f"{settings.stub_url}/requests?delivery_id={delivery_id}",
                                    timeout=10) as response:
            return [r["outcome"] for r in json.load(response)["requests"]]

    def task_trace() -> str:
        row = next((r for r in connector_status(settings) if r["name"] == connector), None)
        failed = [t["trace"] for t in (row or {}).get("tasks", []) if t["state"] == "FAILED"]
        return failed[0] if failed else ""

    # 1. No credential at all: the gateway answers 401 and the task fails, saying so.
    without = {k: v for k, v in config.items() if k != "http.authorization"}
    apply_connector(settings, connector, without)
    delivery = make_delivery(f"sec-{RUN}-refused")
    produce(settings, topic, delivery)
    trace = wait_for(lambda: "no http.authorization is set" in (t := task_trace()) and t, 90,
                     "the task to fail on the gateway's 401")
    assert "answered 401" in trace and "Nothing was dead-lettered" in trace

    # 2. A wrong token, read through the config provider from a file: refused, named, not shown.
    secrets_file.write_text("gateway.email.token=wrong-token\n")
    secrets_file.chmod(0o600)
    with_file = {**config, "http.authorization": f"Bearer ${{file:{secrets_file}:gateway.email.token}}"}
    apply_connector(settings, connector, with_file)
    trace = wait_for(lambda: "the credential in http.authorization" in (t := task_trace()) and t, 90,
                     "the task to fail on the wrong token")
    assert "wrong-token" not in trace
    assert set(stub_outcomes(delivery.delivery_id)) == {"unauthorized"}
    assert dlq_size(settings, dlq) == 0, "a refused credential is no bad record"

    # 3. The fix: the right token in the file, then a restart (the provider is read at task start).
    token = (secrets_dir(settings) / "gateway-email-token").read_text().strip()
    secrets_file.write_text(f"gateway.email.token={token}\n")
    restart_connector(settings, connector)
    wait_for(lambda: "accepted" in stub_outcomes(delivery.delivery_id), 90,
             "the record to be delivered after the fix")
    assert dlq_size(settings, dlq) == 0


def make_delivery(delivery_id: str) -> Delivery:
    return Delivery(
        delivery_id=delivery_id, user_id=f"u-{RUN}", channel=Channel.EMAIL, address="sec@example.com",
        kind=DeliveryKind.SINGLE, category="billing", priority=Priority.NORMAL, title="t", body="b",
        event_ids=(f"{delivery_id}-e",), item_count=1, items=(), digest_key=None, reason="immediate",
        created_at=1_700_000_000_000, first_occurred_at=1_700_000_000_000)


def produce(settings: StackSettings, topic: str, delivery: Delivery) -> None:
    codec = AvroCodec(registry_client(settings))
    codec.add_subject(f"{topic}-value", schema_text("delivery.avsc"))
    producer = Producer(admin_config(settings))
    producer.produce(topic, key=delivery.user_id.encode(),
                     value=codec.encode(f"{topic}-value", delivery.to_avro()))
    assert producer.flush(30) == 0


def dlq_size(settings: StackSettings, topic: str) -> int:
    consumer = Consumer({**admin_config(settings), "group.id": f"sec-{RUN}"})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        return high - low
    finally:
        consumer.close()


def test_a_data_dir_that_trusted_local_connections_is_locked_on_its_next_start(
        settings: StackSettings) -> None:
    """Stacks made before passwords were required: `stack up` gives the owner its password, turns
    `trust` into scram-sha-256 and quiets the error log, on a server of the test's own. (Its home is
    under the stack's cache, not pytest's tmp: the server's user must reach it, and concurrent
    pytest sessions reset the permissions of their shared tmp root.)"""
    home = settings.cache_dir / "test-homes" / f"trusted-{RUN}"
    settings = StackSettings.from_env({"NOTIPIPE_HOME": str(home), "NOTIPIPE_POSTGRES_PORT": "39101"})
    server = Postgres(settings)
    server.prepare()
    hba, conf = server.data / "pg_hba.conf", server.data / "postgresql.conf"
    # As initdb --auth-local=trust left them, without the log settings.
    lines = hba.read_text().splitlines()
    hba.write_text("\n".join(line.replace("scram-sha-256", "trust") if line.startswith("local") else line
                             for line in lines) + "\n")
    kept = [line for line in conf.read_text().splitlines()
            if not line.startswith(("log_error_verbosity", "log_min_error_statement"))]
    conf.write_text("\n".join(kept) + "\n")
    assert " trust" in hba.read_text()
    try:
        server.start()
        assert " trust" not in hba.read_text()
        assert "log_error_verbosity = terse" in conf.read_text()
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(host=str(server.data), port=39101, dbname="notipipe", user="notipipe",
                            password="wrong").close()
        with psycopg.connect(postgres.dsn(settings, postgres.OWNER)) as conn:
            assert conn.execute("SHOW log_error_verbosity").fetchone() == ("terse",)
    finally:
        stop(server.pid_file, timeout_s=60)
        shutil.rmtree(home, ignore_errors=True)
