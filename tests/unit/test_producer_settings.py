"""Every producer of the pipeline writes with acks=all and idempotence, each checked where its
settings are made: a record is acknowledged only once the in-sync replicas have it (two of three
on a replicated cluster), and a retried batch is not written twice.

The worker's producers are checked on its real composition in test_worker_wiring.py (deliveries
and users changelog through librdkafka; DLQ, ticks and preferences changelog through Faust's).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stack.acls_setup import ROLES
from stack.components import Connect, Registry
from stack.secret_files import write_all
from stack.secrets import secret
from stack.settings import StackSettings
from stack.tls import ensure_certificates
from streams.connection.kafka import password_secret_name
from streams.connection.produce import durable

DURABLE = ("all", True)


def _durable(config: dict) -> tuple:
    return config["acks"], config["enable.idempotence"]


def _properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    return {key: value for key, value in pairs}


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StackSettings:
    """A local stack's home with its secrets and CA (no server runs): clients log in from it."""
    monkeypatch.setenv("NOTIPIPE_HOME", str(tmp_path))
    settings = StackSettings.from_env({"NOTIPIPE_HOME": str(tmp_path), "NOTIPIPE_BROKERS": "3"})
    write_all(settings)
    ensure_certificates(settings)
    for role in (*ROLES, "admin"):
        secret(settings, password_secret_name(role))
    return settings


def test_a_config_asking_for_less_is_refused() -> None:
    assert _durable(durable({"linger.ms": 5})) == DURABLE
    assert _durable(durable({"acks": "-1", "enable.idempotence": "true"})) == DURABLE
    for weaker in ({"acks": "1"}, {"acks": 0}, {"enable.idempotence": False}):
        with pytest.raises(ValueError, match="weaker than the pipeline's"):
            durable(weaker)


def test_the_sdk_producer(stack: StackSettings) -> None:
    from streams.client.sdk import ClientSettings, NotificationClient

    client = NotificationClient(ClientSettings(stack.bootstrap_servers, stack.registry_url, ""))
    assert _durable(client.producer_config) == DURABLE
    assert client.producer_config["sasl.username"] == "producer"
    with pytest.raises(ValueError, match="acks"):
        NotificationClient(ClientSettings(stack.bootstrap_servers, stack.registry_url, ""),
                           producer_config={"acks": "1"})


def test_the_cli_sends_through_the_sdk_producer(stack: StackSettings,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.client import cli
    from streams.connection.kafka import KafkaAccess

    monkeypatch.setenv("NOTIPIPE_BOOTSTRAP_SERVERS", stack.bootstrap_servers)
    monkeypatch.setattr(KafkaAccess, "verify", lambda self, *a, **k: None)  # no broker here
    client = cli._producer_client()
    assert _durable(client.producer_config) == DURABLE


def test_the_dlq_replay_producer(stack: StackSettings) -> None:
    from stack.connectors_cli import replay_producer_config

    config = replay_producer_config(stack)
    assert _durable(config) == DURABLE
    assert config["sasl.username"] == "ops"


def test_the_inbox_receipts_producer(stack: StackSettings) -> None:
    from inbox.connections import receipts_producer_config
    from inbox.settings import InboxSettings

    config = receipts_producer_config(InboxSettings.from_env({"NOTIPIPE_HOME": str(stack.home)}))
    assert _durable(config) == DURABLE
    assert config["sasl.username"] == "inbox"


def test_the_bench_load_producer(stack: StackSettings) -> None:
    from bench.kafka_io import load_producer_config

    assert _durable(load_producer_config(stack)) == DURABLE


def test_connects_producers(stack: StackSettings) -> None:
    """`producer.`: the sinks' DLQ writers (Connect turns idempotence off unless told); unprefixed:
    its own writes to its config, offset and status topics (idempotence is forced off there by
    Kafka, acks=all is not)."""
    worker = _properties(Connect(stack).worker_properties())
    assert (worker["producer.acks"], worker["producer.enable.idempotence"]) == ("all", "true")
    assert worker["acks"] == "all"


def test_the_registry_kafkasql_producer(stack: StackSettings) -> None:
    registry = _properties(Registry(stack).kafka_properties())
    assert registry["apicurio.kafkasql.producer.acks"] == "all"
    assert registry["apicurio.kafkasql.producer.enable.idempotence"] == "true"
