"""The local stack's parts, each exercised for real: registry, Avro, Connect, PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import replace

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from stack.components import ProviderStub
from stack.connectors_setup import connect_request, placeholders
from stack.process import read_pid, stop
from stack.schemas_setup import registry_client
from stack.settings import StackSettings
from streams.connection import postgres
from tests.integration.kafka_clients import admin_config
from tests.integration.pipeline import free_port
from tests.waiting import wait_for

PROBE_V1 = {
    "type": "record", "name": "Probe", "namespace": "test.notipipe",
    "fields": [{"name": "id", "type": "string"}, {"name": "count", "type": "int"}],
}


def _registry(settings: StackSettings) -> SchemaRegistryClient:
    """A client with the schema writer's credentials (reads need none)."""
    return registry_client(settings)


def _produce(settings: StackSettings, topic: str, records: list[dict], schema: dict) -> None:
    serializer = AvroSerializer(_registry(settings), json.dumps(schema))
    producer = Producer(admin_config(settings))
    for record in records:
        producer.produce(topic, key=record["id"].encode(),
                         value=serializer(record, SerializationContext(topic, MessageField.VALUE)))
    assert producer.flush(30) == 0


def _consume(settings: StackSettings, topic: str, count: int) -> list[bytes]:
    consumer = Consumer({**admin_config(settings),
                         "group.id": f"test-{uuid.uuid4().hex}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    values: list[bytes] = []
    try:
        def poll() -> bool:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                values.append(message.value())
            return len(values) >= count
        wait_for(poll, 30, f"{count} records on {topic}")
    finally:
        consumer.close()
    return values


def test_avro_round_trip_through_the_registry(settings: StackSettings, fresh_topic: str) -> None:
    records = [{"id": f"u{i}", "count": i} for i in range(3)]
    _produce(settings, fresh_topic, records, PROBE_V1)

    registered = _registry(settings).get_latest_version(f"{fresh_topic}-value")
    assert json.loads(registered.schema.schema_str)["name"] == "Probe"

    raw = _consume(settings, fresh_topic, 3)
    # Confluent wire format: magic byte 0, then the registry's 4-byte schema id.
    assert all(v[0] == 0 and int.from_bytes(v[1:5], "big") == registered.schema_id for v in raw)
    deserializer = AvroDeserializer(SchemaRegistryClient({"url": settings.registry_url}))
    decoded = [deserializer(v, SerializationContext(fresh_topic, MessageField.VALUE)) for v in raw]
    assert sorted(decoded, key=lambda r: r["id"]) == records


def test_registry_rejects_an_incompatible_change(settings: StackSettings) -> None:
    client = _registry(settings)
    subject = f"test-compat-{uuid.uuid4().hex[:8]}-value"
    client.register_schema(subject, Schema(json.dumps(PROBE_V1), "AVRO"))
    client.set_compatibility(subject_name=subject, level="BACKWARD_TRANSITIVE")
    # A new required field without a default cannot read data written with v1.
    breaking = {**PROBE_V1, "fields": [*PROBE_V1["fields"], {"name": "owner", "type": "string"}]}
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(subject, Schema(json.dumps(breaking), "AVRO"))
    assert refused.value.http_status_code == 409
    # The compatible variant (same field, with a default) is accepted.
    compatible = {**PROBE_V1, "fields": [*PROBE_V1["fields"],
                                         {"name": "owner", "type": "string", "default": ""}]}
    client.register_schema(subject, Schema(json.dumps(compatible), "AVRO"))
    assert len(client.get_versions(subject)) == 2
    client.delete_subject(subject, permanent=False)


def test_connect_has_the_sinks_and_the_avro_converter(settings: StackSettings) -> None:
    classes = {plugin["class"] for plugin in
               connect_request(settings, "GET", "/connector-plugins?connectorsOnly=false")}
    assert "io.debezium.connector.jdbc.JdbcSinkConnector" in classes
    assert "io.apicurio.registry.utils.converter.AvroConverter" in classes
    assert any("http" in c.lower() and "sink" in c.lower() for c in classes), sorted(classes)


def test_jdbc_sink_writes_an_avro_record_into_postgres(settings: StackSettings, fresh_topic: str,
                                                       pg) -> None:
    """As the pipeline's sinks do: the owner makes the table, the sink role only writes rows."""
    table = fresh_topic.replace(".", "_")
    pg.execute(f'CREATE TABLE "{table}" (id text PRIMARY KEY, count integer NOT NULL)')
    pg.execute(f'GRANT SELECT, INSERT, UPDATE ON "{table}" TO {postgres.SINK.name}')
    name = f"test-jdbc-{fresh_topic}"
    secrets_file = placeholders(settings, {})["CONNECT_SECRETS_FILE"]
    config = {
        "connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector",
        "topics": fresh_topic, "tasks.max": "1",
        "connection.url": settings.postgres_jdbc_url, "connection.username": postgres.SINK.name,
        "connection.password": f"${{file:{secrets_file}:postgres.sink.password}}",
        "insert.mode": "upsert", "primary.key.mode": "record_value", "primary.key.fields": "id",
        "schema.evolution": "none", "collection.name.format": table,
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "io.apicurio.registry.utils.converter.AvroConverter",
        "value.converter.apicurio.registry.url":
            f"http://127.0.0.1:{settings.registry_port}/apis/registry/v2",
        "value.converter.apicurio.registry.use-id": "contentId",
        "value.converter.apicurio.registry.id-handler":
            "io.apicurio.registry.serde.Legacy4ByteIdHandler",
    }
    connect_request(settings, "PUT", f"/connectors/{name}/config", config)
    try:
        _produce(settings, fresh_topic, [{"id": "a", "count": 1}, {"id": "b", "count": 2},
                                         {"id": "a", "count": 3}], PROBE_V1)

        def rows() -> list[tuple]:
            return pg.execute(f'SELECT id, count FROM "{table}" ORDER BY id').fetchall()
        # Upsert on the key: "a" written twice is one row holding the later value.
        assert wait_for(lambda: rows() == [("a", 3), ("b", 2)] and rows(), 90,
                        f"rows in {table}") == [("a", 3), ("b", 2)]
        # The stored config names the password; only the running task has it.
        stored = connect_request(settings, "GET", f"/connectors/{name}/config")
        assert stored["connection.password"].startswith("${file:")
    finally:
        connect_request(settings, "DELETE", f"/connectors/{name}")
        pg.execute(f'DROP TABLE IF EXISTS "{table}"')


def _status(environ: dict[str, str]) -> dict[str, str]:
    result = subprocess.run([sys.executable, "-m", "streams.cli", "stack", "status", "--json"],
                            capture_output=True, text=True, env=environ)
    return {c["name"]: c["state"] for c in json.loads(result.stdout)["components"]}


def test_status_reports_a_killed_component_as_down(settings: StackSettings, tmp_path) -> None:
    """A provider stub of this test's own (own home, own port) is killed: the shared stack's stub
    keeps serving the other tests, whatever order they run in."""
    scoped = replace(settings, home=tmp_path, stub_port=free_port())
    environ = {**os.environ, "NOTIPIPE_HOME": str(tmp_path),
               "NOTIPIPE_STUB_PORT": str(scoped.stub_port)}
    stub = ProviderStub(scoped)
    stub.start()
    try:
        pid = read_pid(stub.pid_file)
        assert pid is not None and _status(environ)["provider-stub"] == "up"
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: _status(environ)["provider-stub"] == "down", 20,
                 "status to show the stub down")
        assert _status(dict(os.environ))["kafka"] == "up"  # the shared stack is untouched
    finally:
        stop(stub.pid_file, timeout_s=10)
