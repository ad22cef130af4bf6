"""The local stack's Kafka security, as configuration: broker properties, principals' ACLs,
secrets and certificates (the real broker enforcing them: tests/integration/test_security_kafka.py)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from confluent_kafka.admin import AclOperation, ResourcePatternType, ResourceType

from stack.acls_setup import ROLES, Grant, grants, pipeline_grants, shared_grants
from stack.broker_config import KafkaNode, broker_properties, scram_bootstrap_args
from stack.components import Kafka
from stack.process import StartError
from stack.secrets import secret, secrets_dir
from stack.settings import StackSettings
from stack.tls import TlsFiles, ensure_certificates, openssl


def _properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_the_broker_is_locked_down(tmp_path: Path) -> None:
    node = KafkaNode(1, "127.0.0.1", 29092, 29093)
    props = _properties(broker_properties(node, [node], tmp_path / "data", TlsFiles.of(
        StackSettings.from_env({"NOTIPIPE_HOME": str(tmp_path)})), "broker-secret", 8))
    assert props["listeners"] == "CLIENT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert props["listener.security.protocol.map"] == "CLIENT:SASL_SSL,CONTROLLER:SSL"
    assert props["listener.name.client.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["inter.broker.listener.name"] == "CLIENT"
    assert props["listener.name.controller.ssl.client.auth"] == "required"
    assert props["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:admin;User:broker"  # nobody anonymous
    assert "PLAINTEXT" not in props["listener.security.protocol.map"]
    jaas = props["listener.name.client.scram-sha-512.sasl.jaas.config"]
    assert 'username="broker" password="broker-secret"' in jaas


def test_n_nodes_share_one_voter_list_and_each_has_its_ports(tmp_path: Path) -> None:
    nodes = [KafkaNode(i, "127.0.0.1", 29090 + 10 * i, 29091 + 10 * i) for i in (1, 2, 3)]
    tls = TlsFiles.of(StackSettings.from_env({"NOTIPIPE_HOME": str(tmp_path)}))
    second = _properties(broker_properties(nodes[1], nodes, tmp_path, tls, "pw", 8))
    assert second["node.id"] == "2"
    assert second["controller.quorum.voters"] == "1@127.0.0.1:29101,2@127.0.0.1:29111,3@127.0.0.1:29121"
    assert second["advertised.listeners"] == "CLIENT://127.0.0.1:29110"


def test_the_first_users_come_with_the_storage() -> None:
    assert scram_bootstrap_args({"admin": "a", "broker": "b"}) == [
        "--add-scram", "SCRAM-SHA-512=[name=admin,password=a]",
        "--add-scram", "SCRAM-SHA-512=[name=broker,password=b]"]


def _of(role: str, found: list[Grant]) -> set[tuple[str, str, str, str]]:
    return {(g.operation.name, g.resource.name, g.name, g.pattern.name) for g in found if g.role == role}


def test_each_principal_gets_only_what_its_job_needs() -> None:
    mine = pipeline_grants("p.", "p.router")
    assert _of("producer", mine) == {
        ("WRITE", "TOPIC", "p.notifications.events", "LITERAL"),
        ("WRITE", "TOPIC", "p.notifications.preferences", "LITERAL"),
        # Only to read their max.message.bytes (the SDK refuses an oversized record up front).
        ("DESCRIBE_CONFIGS", "TOPIC", "p.notifications.events", "LITERAL"),
        ("DESCRIBE_CONFIGS", "TOPIC", "p.notifications.preferences", "LITERAL")}
    assert _of("worker", mine) == {
        ("READ", "TOPIC", "p.notifications.events", "LITERAL"),
        ("READ", "TOPIC", "p.notifications.preferences", "LITERAL"),
        ("READ", "TOPIC", "p.notifications.receipts", "LITERAL"),
        ("WRITE", "TOPIC", "p.notifications.deliveries.", "PREFIXED"),
        ("WRITE", "TOPIC", "p.notifications.dlq", "LITERAL"),
        ("ALL", "TOPIC", "p.router", "PREFIXED"), ("ALL", "GROUP", "p.router", "PREFIXED")}
    assert _of("connect", mine) == {("READ", "TOPIC", "p.notifications.deliveries.", "PREFIXED"),
                                    ("READ", "TOPIC", "p.notifications.receipts", "LITERAL"),
                                    ("WRITE", "TOPIC", "p.notifications.sink-dlq.", "PREFIXED")}
    assert _of("inbox", mine) == {("READ", "TOPIC", "p.notifications.deliveries.in_app", "LITERAL"),
                                  ("WRITE", "TOPIC", "p.notifications.receipts", "LITERAL")}
    shared = shared_grants()
    assert _of("monitoring", shared) == {("DESCRIBE", "TOPIC", "*", "LITERAL"),
                                         ("DESCRIBE", "GROUP", "*", "LITERAL"),
                                         ("DESCRIBE", "BROKER", "kafka-cluster", "LITERAL")}
    assert {g.role for g in [*mine, *shared]} == set(ROLES)


def test_nothing_is_granted_on_everything() -> None:
    every = grants(StackSettings.from_env({}))
    wide = [g for g in every if g.name == "*" or g.name == ""]
    assert all(g.operation == AclOperation.DESCRIBE and g.role == "monitoring" for g in wide)
    assert not [g for g in every if g.resource == ResourceType.BROKER and g.role != "monitoring"]
    # No principal may create topics at large: CREATE (inside ALL) only on names of its own.
    for g in every:
        if g.operation == AclOperation.ALL:
            assert g.name.startswith(("_connect-", "_schemas-", "notipipe-")), g.describe()
    assert all(g.pattern in (ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED) for g in every)


def test_a_topic_prefix_gets_acls_of_its_own() -> None:
    plain = {g.name for g in pipeline_grants("", "notipipe-router")}
    scoped = {g.name for g in pipeline_grants("it1.", "it1.router")}
    assert not plain & scoped


def test_secrets_are_generated_once_and_private(tmp_path: Path) -> None:
    settings = StackSettings.from_env({"NOTIPIPE_HOME": str(tmp_path)})
    first = secret(settings, "kafka-x-password")
    assert len(first) >= 32 and secret(settings, "kafka-x-password") == first
    assert stat.S_IMODE(secrets_dir(settings).stat().st_mode) == 0o700
    assert stat.S_IMODE((secrets_dir(settings) / "kafka-x-password").stat().st_mode) == 0o600


def test_the_stack_ca_signs_a_broker_certificate_for_its_addresses(tmp_path: Path) -> None:
    settings = StackSettings.from_env({"NOTIPIPE_HOME": str(tmp_path)})
    made = ensure_certificates(settings)
    assert len(made) == 2 and ensure_certificates(settings) == []  # once
    files = TlsFiles.of(settings)
    text = subprocess.run([openssl(), "x509", "-in", str(files.broker_cert), "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout
    assert "IP Address:127.0.0.1" in text and "DNS:localhost" in text
    assert "Subject: CN = broker" in text and "TLS Web Client Authentication" in text
    verified = subprocess.run([openssl(), "verify", "-CAfile", str(files.ca_cert), str(files.broker_cert)],
                              capture_output=True, text=True)
    assert verified.returncode == 0, verified.stderr
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in secrets_dir(settings).iterdir())
    # A CA that changed (here: a new one) gets a broker certificate it signed.
    files.ca_key.unlink()
    assert len(ensure_certificates(settings)) == 2


def test_a_kafka_started_before_the_stack_was_secured_is_named(tmp_path: Path) -> None:
    settings = StackSettings.from_env({"NOTIPIPE_HOME": str(tmp_path)})
    kafka = Kafka(settings)
    kafka.properties.parent.mkdir(parents=True)
    kafka.properties.write_text("listeners=PLAINTEXT://127.0.0.1:9092\n")
    kafka.pid_file.parent.mkdir(parents=True, exist_ok=True)
    kafka.pid_file.write_text(str(os.getpid()))  # a live process stands in for the old broker
    with pytest.raises(StartError, match="started without TLS and SASL.*notipipe stack reset"):
        kafka.start()


def test_data_formatted_without_scram_users_asks_for_a_reset(tmp_path: Path) -> None:
    settings = StackSettings.from_env({"NOTIPIPE_HOME": str(tmp_path)})
    kafka = Kafka(settings)
    kafka.data.mkdir(parents=True)
    (kafka.data / "meta.properties").write_text("version=1\n")
    with pytest.raises(StartError, match="formatted without SCRAM users.*notipipe stack reset"):
        kafka.prepare()
