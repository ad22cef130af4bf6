"""The connector configs in connectors/ against the Delivery contract and the tables the project owns."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from stack import artifacts
from stack.connectors_setup import CONNECTOR_DIR, ConnectorError, load_connectors, placeholders, render
from stack.migrations import MigrationError, find_migrations
from stack.settings import StackSettings
from streams.contracts.schemas import load_schema
from streams.contracts.topics import CHANNELS, Topics

SETTINGS = StackSettings.from_env({"NOTIPIPE_TOPIC_PREFIX": "pfx."})
DELIVERY_FIELDS = {f["name"] for f in load_schema("delivery")["fields"]}
RECEIPT_FIELDS = {f["name"] for f in load_schema("delivery_status")["fields"]}
# Columns the sinks never write: the inbox service's (read_at, archived_at), the database's
# (stored_at default now()) and those the receipts' triggers keep (delivery_log.status*).
NOT_FROM_THE_SINK = {
    "inbox": {"read_at", "archived_at", "stored_at"},
    "delivery_log": {"stored_at", "status", "status_reason", "status_provider", "status_reported_at"},
    "delivery_receipts": {"stored_at"},
}


def connectors() -> dict[str, dict[str, str]]:
    return dict(load_connectors(SETTINGS, environ={}))


def table_columns(table: str) -> set[str]:
    """Column names of a CREATE TABLE in the migrations and the columns later ones add (good
    enough for this project's DDL)."""
    sql = "\n".join(m.sql for m in find_migrations())
    body = re.search(rf"CREATE TABLE {table} \((.*?)\n\);", sql, re.S)
    assert body, f"no CREATE TABLE {table} in connectors/sql"
    columns = {m.group(1) for m in re.finditer(r"^\s+([a-z_]+)\s+[a-z]", body.group(1), re.M)}
    for alter in re.finditer(rf"ALTER TABLE {table}\b(.*?);", sql, re.S):
        columns |= set(re.findall(r"ADD COLUMN (?:IF NOT EXISTS )?([a-z_]+)", alter.group(1)))
    return columns


def test_every_file_renders_and_is_named_after_its_connector() -> None:
    for path in CONNECTOR_DIR.glob("*.json"):
        spec = json.loads(path.read_text())
        assert spec["name"] == path.stem
    assert set(connectors()) == {"jdbc-inbox", "jdbc-delivery-log", "jdbc-receipts", "http-email",
                                 "http-sms", "http-push"}
    for config in connectors().values():
        # What is left for Connect are its config providers' references (secrets), nothing else.
        left = [v for v in config.values() if "${" in v]
        assert all(re.fullmatch(r"[^$]*\$\{(file|env):[^}]+\}", v) for v in left), left


def test_no_secret_is_written_into_a_connector_config() -> None:
    secrets_file = placeholders(SETTINGS, {})["CONNECT_SECRETS_FILE"]
    for name, config in connectors().items():
        if name.startswith("jdbc-"):
            assert config["connection.username"] == "notipipe_sink"
            assert config["connection.password"] == f"${{file:{secrets_file}:postgres.sink.password}}"
        else:
            channel = name.removeprefix("http-")
            assert config["http.authorization"] == f"Bearer ${{file:{secrets_file}:gateway.{channel}.token}}"
        # Connect's error log names a failed record by position, never by its content.
        assert config["errors.log.include.messages"] == "false"


def test_the_jdbc_driver_keeps_row_values_out_of_its_errors() -> None:
    for name in ("jdbc-inbox", "jdbc-delivery-log"):
        assert connectors()[name]["connection.url"].endswith("?logServerErrorDetail=false")
    with_options = dict(load_connectors(SETTINGS, environ={
        "NOTIPIPE_POSTGRES_JDBC_URL": "jdbc:postgresql://db:5432/notipipe?sslmode=require"}))
    assert with_options["jdbc-inbox"]["connection.url"] == (
        "jdbc:postgresql://db:5432/notipipe?sslmode=require&logServerErrorDetail=false")


def test_a_missing_placeholder_is_an_error() -> None:
    with pytest.raises(ConnectorError, match="NOPE"):
        render({"x": "${NOPE}"}, placeholders(SETTINGS, {}))


def test_gateway_urls_come_from_the_environment() -> None:
    values = placeholders(SETTINGS, {"NOTIPIPE_SMS_GATEWAY_URL": "https://sms.example/v1/messages"})
    assert values["SMS_GATEWAY_URL"] == "https://sms.example/v1/messages"
    assert values["EMAIL_GATEWAY_URL"] == f"{SETTINGS.stub_url}/send/email"
    rendered = dict(load_connectors(SETTINGS, environ={"NOTIPIPE_SMS_GATEWAY_URL": "https://sms.example/x"}))
    assert rendered["http-sms"]["http.url"] == "https://sms.example/x"


@pytest.mark.parametrize("name,table,topics", [
    ("jdbc-inbox", "inbox", ["in_app"]),
    ("jdbc-delivery-log", "delivery_log", list(CHANNELS)),
])
def test_jdbc_sinks_write_exactly_the_owned_columns_with_upsert(name: str, table: str,
                                                                topics: list[str]) -> None:
    config = connectors()[name]
    assert config["topics"].split(",") == [Topics("pfx.").deliveries(ch) for ch in topics]
    assert config["collection.name.format"] == table
    assert (config["insert.mode"], config["primary.key.mode"], config["primary.key.fields"]) == (
        "upsert", "record_value", "delivery_id")
    # The project owns the DDL: the connector never creates or alters a table.
    assert config["schema.evolution"] == "none"
    kept = set(config["transforms.columns.include"].split(","))
    assert config["transforms.columns.type"] == "org.apache.kafka.connect.transforms.ReplaceField$Value"
    assert kept <= DELIVERY_FIELDS
    assert "items" not in kept, "array<record> has no column type; it is left out"
    assert kept == table_columns(table) - NOT_FROM_THE_SINK[table]


def test_the_receipts_sink_keeps_the_latest_status_per_delivery() -> None:
    config = connectors()["jdbc-receipts"]
    assert config["topics"] == Topics("pfx.").receipts
    assert config["collection.name.format"] == "delivery_receipts"
    assert (config["insert.mode"], config["primary.key.mode"], config["primary.key.fields"]) == (
        "upsert", "record_value", "delivery_id")
    assert config["schema.evolution"] == "none"
    kept = set(config["transforms.columns.include"].split(","))
    table = "delivery_receipts"
    assert kept == RECEIPT_FIELDS == table_columns(table) - NOT_FROM_THE_SINK[table]
    assert config["errors.deadletterqueue.topic.name"] == "pfx.notifications.sink-dlq.jdbc"
    # delivery_log gets the status columns, kept by triggers from delivery_receipts, never by a sink.
    assert {"status", "status_reported_at"} <= table_columns("delivery_log")
    assert "status" not in connectors()["jdbc-delivery-log"]["transforms.columns.include"].split(",")


def test_http_sinks_post_each_channel_to_its_gateway_and_dead_letter_failures() -> None:
    for channel in ("email", "sms", "push"):
        config = connectors()[f"http-{channel}"]
        assert config["connector.class"] == "io.notipipe.connect.http.HttpSinkConnector"
        assert config["topics"] == Topics("pfx.").deliveries(channel)
        assert config["http.url"] == f"{SETTINGS.stub_url}/send/{channel}"
        assert config["idempotency.key.field"] == "delivery_id"
        # Nothing dropped silently: failures go to the DLQ with the error in headers.
        assert config["errors.tolerance"] == "all"
        assert config["errors.deadletterqueue.topic.name"] == "pfx.notifications.sink-dlq.http"
        assert config["errors.deadletterqueue.context.headers.enable"] == "true"


@pytest.mark.parametrize("name,table", [("jdbc-inbox", "inbox"), ("jdbc-delivery-log", "delivery_log")])
def test_the_sink_role_may_write_exactly_the_sink_columns(name: str, table: str) -> None:
    sql = "\n".join(m.sql for m in find_migrations())
    grant = rf"GRANT INSERT \(([^)]*)\),\s*UPDATE \(([^)]*)\)\s*ON {table} TO notipipe_sink;"
    grants = re.findall(grant, sql)
    assert grants, f"no column grant on {table} for the sink role"
    kept = set(connectors()[name]["transforms.columns.include"].split(","))
    for position in (0, 1):  # INSERT, then UPDATE: over every migration, exactly the sink's columns
        assert {c.strip() for g in grants for c in g[position].split(",")} == kept


def test_every_sink_reads_avro_through_the_registry() -> None:
    for config in connectors().values():
        assert config["value.converter"] == "io.apicurio.registry.utils.converter.AvroConverter"
        assert config["value.converter.apicurio.registry.url"].endswith("/apis/registry/v2")


def test_migration_names_are_checked(tmp_path: Path) -> None:
    (tmp_path / "V001__one.sql").write_text("select 1;")
    (tmp_path / "V002__two.sql").write_text("select 2;")
    assert [m.version for m in find_migrations(tmp_path)] == [1, 2]
    (tmp_path / "V2__again.sql").write_text("select 2;")
    with pytest.raises(MigrationError, match="share version 2"):
        find_migrations(tmp_path)
    (tmp_path / "V2__again.sql").unlink()
    (tmp_path / "inbox.sql").write_text("select 3;")
    with pytest.raises(MigrationError, match="V<number>__<name>.sql"):
        find_migrations(tmp_path)


def test_a_no_transaction_migration_is_split_into_its_statements(tmp_path: Path) -> None:
    (tmp_path / "V001__a.sql").write_text("create table t (a int);\n")
    (tmp_path / "V002__b.sql").write_text(
        "-- migration: no-transaction\n-- why\nALTER TABLE t ADD COLUMN IF NOT EXISTS b text;\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_b\n    ON t (b);\n")
    first, second = find_migrations(tmp_path)
    assert first.transactional and not second.transactional
    assert second.statements() == ["ALTER TABLE t ADD COLUMN IF NOT EXISTS b text;",
                                   "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_b\n    ON t (b);"]
    (tmp_path / "V003__c.sql").write_text("-- migration: no-transaction\nselect 1")
    with pytest.raises(MigrationError, match="does not end with ';'"):
        find_migrations(tmp_path)[2].statements()


def test_the_projects_no_transaction_migrations_split_cleanly() -> None:
    for migration in find_migrations():
        if not migration.transactional:
            assert migration.statements(), migration.path.name


def test_the_http_sink_is_rebuilt_when_its_sources_change(tmp_path: Path, monkeypatch) -> None:
    project = tmp_path / "connectors" / "http-sink"
    (project / "src" / "main").mkdir(parents=True)
    (project / "pom.xml").write_text("<project/>")
    (project / "src" / "main" / "A.java").write_text("class A {}")
    monkeypatch.setattr(artifacts, "PROJECT_ROOT", tmp_path)
    build = artifacts.Build("x", "connectors/http-sink", "target/x.jar", "x")
    first = artifacts.source_hash(build)
    assert artifacts.source_hash(build) == first
    (project / "src" / "main" / "A.java").write_text("class A { int b; }")
    assert artifacts.source_hash(build) != first
    (project / "target").mkdir()
    (project / "target" / "x.jar").write_text("built")
    changed = artifacts.source_hash(build)
    assert artifacts.source_hash(build) == changed, "build output does not count"


def test_every_sink_rides_out_a_registry_outage_on_the_schemas_it_has() -> None:
    """A converter whose cached schema expires while the registry is away must keep it, not
    dead-letter good records (seen: `notipipe chaos registry-down`)."""
    for config in connectors().values():
        assert config["value.converter.apicurio.registry.fault-tolerant-refresh"] == "true"
        assert int(config["value.converter.apicurio.registry.retry-count"]) >= 30


def test_jdbc_sinks_retry_a_lost_connection_and_test_pooled_ones() -> None:
    for name in ("jdbc-inbox", "jdbc-delivery-log"):
        config = connectors()[name]
        assert config["connection.restart.on.errors"] == "true"  # else nothing is retried
        assert config["hibernate.c3p0.testConnectionOnCheckout"] == "true"
        retried_s = int(config["flush.max.retries"]) * int(config["flush.retry.delay.ms"]) / 1000
        assert retried_s >= 60


def test_connects_answers_during_a_rebalance_are_asked_again_and_others_are_not() -> None:
    from stack.connectors_setup import _rebalancing

    assert _rebalancing(409, '{"message":"Cannot complete request momentarily due to stale configuration"}')
    assert _rebalancing(500, '{"message":"Request cannot be completed because a rebalance is expected"}')
    assert not _rebalancing(500, '{"message":"Failed to find any class that implements Connector"}')
    assert not _rebalancing(400, '{"message":"Connector configuration is invalid"}')
    assert not _rebalancing(404, '{"message":"Connector x not found"}')
