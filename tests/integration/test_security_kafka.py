"""The locked-down Kafka of the real stack refuses what it must, with an error that says why.

Each refusal is bounded by a deadline and checked by its error code or message: no credentials,
a wrong password, plaintext to the TLS listener, the controller listener without the broker's
certificate, and each principal outside its ACLs (docs/security.md). The CLI and the worker stop
with a message naming the variable for each kind of bad setting. Every refusal is paired with the
same principal doing what it may, so a refusal cannot come from a broken login.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import ssl
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from stack.kafka_access import stack_access
from stack.secrets import secrets_dir
from stack.settings import StackSettings
from stack.tls import TlsFiles, openssl
from streams.connection.kafka import ACCESS_VARIABLES, KafkaAccess, KafkaAccessError, password_secret_name
from tests.integration.pipeline import PipelineEnv
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
REFUSAL_S = 15  # every refusal below must show within this long


def access(pipeline_env: PipelineEnv, role: str) -> KafkaAccess:
    return stack_access(pipeline_env.stack, role)


def refusal(kafka: KafkaAccess) -> str:
    with pytest.raises(KafkaAccessError) as refused:
        kafka.verify(timeout_s=REFUSAL_S)
    return str(refused.value)


def produce_error(kafka: KafkaAccess, topic: str) -> KafkaError | None:
    """Write one record to partition 0; the broker's answer (None: written)."""
    reports: list[KafkaError | None] = []
    producer = Producer({**kafka.producer_config(), "message.timeout.ms": REFUSAL_S * 1000})
    producer.produce(topic, key=b"k", value=b"v", partition=0,
                     on_delivery=lambda err, _msg: reports.append(err))
    assert producer.flush(REFUSAL_S + 5) == 0, f"no answer for the write to {topic}"
    return reports[0]


def read_result(kafka: KafkaAccess, topic: str, group: str) -> Any:
    """Read partition 0 of `topic` from the start: the first record, or the first error."""
    consumer = Consumer({**kafka.confluent_config(), "group.id": group, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    try:
        def first() -> tuple[Any] | None:
            message = consumer.poll(0.5)
            return (message,) if message is not None else None  # a Message's truth is its length
        (message,) = wait_for(first, REFUSAL_S, f"a record or an error from {topic}", interval_s=0)
        return message.error() or message
    finally:
        consumer.close()


def topic_error(kafka: KafkaAccess, topic: str) -> int | None:
    """The broker's answer when `kafka` asks for the topic's metadata (None: it may see it)."""
    metadata = AdminClient(kafka.confluent_config()).list_topics(topic, timeout=REFUSAL_S)
    error = metadata.topics[topic].error
    return None if error is None else error.code()


def assert_cannot_read(kafka: KafkaAccess, topic: str) -> None:
    """Refused the topic itself (not even its metadata), and any attempt to consume it."""
    assert topic_error(kafka, topic) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    error = read_result(kafka, topic, f"notipipe-ops-probe-{uuid.uuid4().hex[:6]}")
    assert isinstance(error, KafkaError), f"{kafka.username} read a record of {topic}"
    assert error.code() in (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED)


# --- logging in -----------------------------------------------------------------------------------

def test_a_client_without_credentials_is_refused(pipeline_env: PipelineEnv) -> None:
    anonymous = dataclasses.replace(access(pipeline_env, "producer"), security_protocol="SSL",
                                    username=None, password=None)
    assert "wants a SASL login" in refusal(anonymous)
    assert access(pipeline_env, "producer").verify(timeout_s=REFUSAL_S) is None


def test_a_wrong_password_is_refused(pipeline_env: PipelineEnv) -> None:
    wrong = dataclasses.replace(access(pipeline_env, "producer"), password="not-the-password")
    message = refusal(wrong)
    assert "refused user 'producer'" in message and "invalid credentials" in message


def test_an_unknown_user_is_refused(pipeline_env: PipelineEnv) -> None:
    stranger = dataclasses.replace(access(pipeline_env, "producer"), username="mallory")
    assert "refused user 'mallory'" in refusal(stranger)


def test_a_plaintext_connection_to_the_tls_listener_is_refused(pipeline_env: PipelineEnv) -> None:
    plaintext = dataclasses.replace(access(pipeline_env, "admin"), security_protocol="PLAINTEXT")
    assert "does not speak NOTIPIPE_KAFKA_SECURITY_PROTOCOL=PLAINTEXT" in refusal(plaintext)


API_VERSIONS_V0 = b"\x00\x00\x00\x0a" + b"\x00\x12\x00\x00" + b"\x00\x00\x00\x01" + b"\xff\xff"


def _kafka_answer(sock: socket.socket) -> bytes:
    """Ask for the API versions (correlation id 1); what comes back, b"" if refused."""
    sock.sendall(API_VERSIONS_V0)
    try:
        return sock.recv(64)
    except (ssl.SSLError, ConnectionError):
        return b""


def test_the_controller_listener_takes_only_the_brokers_certificate(settings: StackSettings) -> None:
    """No local process reaches the KRaft controller (and the admin requests it serves) without
    the broker's certificate: TLS with a client certificate signed by the stack's CA, nothing
    anonymous, nothing in plaintext."""
    port = settings.kafka_port + 1
    files = TlsFiles.of(settings)

    def over_tls(client_cert: Path | None) -> bytes:
        context = ssl.create_default_context(cafile=str(files.ca_cert))
        if client_cert is not None:
            context.load_cert_chain(str(client_cert))
        with socket.create_connection(("127.0.0.1", port), timeout=REFUSAL_S) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return _kafka_answer(tls)

    assert over_tls(files.broker_pem)[4:8] == b"\x00\x00\x00\x01"  # the probe works...
    assert over_tls(None)[4:8] != b"\x00\x00\x00\x01"  # ...without a certificate: no answer
    with socket.create_connection(("127.0.0.1", port), timeout=REFUSAL_S) as raw:
        assert _kafka_answer(raw)[4:8] != b"\x00\x00\x00\x01"  # nor in plaintext


# --- the broker's certificate ---------------------------------------------------------------------

def _other_ca(tmp_path: Path) -> Path:
    cert = tmp_path / "other-ca.crt"
    subprocess.run([openssl(), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(tmp_path / "other-ca.key"), "-out", str(cert), "-days", "30",
                    "-subj", "/CN=notipipe local stack CA"], check=True, capture_output=True)
    return cert


def _expired_copy_of_the_stack_ca(settings: StackSettings, tmp_path: Path) -> Path:
    """The stack's CA (same name, same key: the broker's certificate chains to it) with a
    validity that ended in 2020."""
    files = TlsFiles.of(settings)
    (tmp_path / "index.txt").write_text("")
    (tmp_path / "serial").write_text("01\n")
    (tmp_path / "ca.cnf").write_text(
        "[ca]\ndefault_ca = ca_default\n[ca_default]\ndatabase = index.txt\nnew_certs_dir = .\n"
        "serial = serial\ndefault_md = sha256\npolicy = any\n[any]\ncommonName = supplied\n"
        "[v3_ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n"
        "subjectKeyIdentifier = hash\n")
    subject = subprocess.run([openssl(), "x509", "-in", str(files.ca_cert), "-noout", "-subject",
                              "-nameopt", "compat"], check=True, capture_output=True, text=True)
    csr, cert = tmp_path / "ca.csr", tmp_path / "expired-ca.crt"
    subprocess.run([openssl(), "req", "-new", "-key", str(files.ca_key), "-out", str(csr),
                    "-subj", subject.stdout.strip().removeprefix("subject=")],
                   check=True, capture_output=True)
    subprocess.run([openssl(), "ca", "-batch", "-config", "ca.cnf", "-selfsign", "-keyfile",
                    str(files.ca_key), "-in", str(csr), "-startdate", "20200101000000Z", "-enddate",
                    "20200201000000Z", "-extensions", "v3_ca", "-out", str(cert)],
                   check=True, capture_output=True, cwd=tmp_path)
    return cert


def test_a_ca_that_did_not_sign_the_broker_is_refused(pipeline_env: PipelineEnv, tmp_path: Path) -> None:
    other = dataclasses.replace(access(pipeline_env, "producer"), ca_file=_other_ca(tmp_path),
                                ca_given=True)
    message = refusal(other)
    assert "does not verify against NOTIPIPE_KAFKA_CA_FILE=" in message
    assert "self-signed certificate in certificate chain" in message  # OpenSSL's reason


def test_an_expired_certificate_in_the_chain_is_refused(settings: StackSettings,
                                                        pipeline_env: PipelineEnv, tmp_path: Path) -> None:
    expired = dataclasses.replace(access(pipeline_env, "producer"),
                                  ca_file=_expired_copy_of_the_stack_ca(settings, tmp_path), ca_given=True)
    message = refusal(expired)
    assert "has expired" in message and "expired on Feb  1 00:00:00 2020 GMT" in message


def test_clients_verify_the_brokers_host_name(pipeline_env: PipelineEnv) -> None:
    """The certificate names 127.0.0.1 and localhost; both verify, with host name checks on."""
    producer = access(pipeline_env, "producer")
    assert producer.confluent_config()["ssl.endpoint.identification.algorithm"] == "https"
    assert producer.ssl_context().check_hostname
    port = pipeline_env.stack.kafka_port
    for host in ("127.0.0.1", "localhost"):
        assert producer.at(f"{host}:{port}").tls_verify_error() is None


# --- bad settings stop the processes with a message naming the variable ---------------------------

def _run(command: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ACCESS_VARIABLES}
    return subprocess.run([sys.executable, "-m", "streams.cli", *command], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env={**clean, **env})


@pytest.fixture(scope="module")
def send_args(pipeline_env: PipelineEnv) -> tuple[list[str], dict[str, str]]:
    env = {"NOTIPIPE_BOOTSTRAP_SERVERS": pipeline_env.stack.bootstrap_servers,
           "NOTIPIPE_REGISTRY_URL": pipeline_env.stack.registry_url,
           "NOTIPIPE_TOPIC_PREFIX": pipeline_env.prefix}
    return ["send", "--user", "u-settings", "--category", "billing", "--title", "t", "--body", "b"], env


def test_the_cli_sends_with_the_local_stacks_credentials(send_args) -> None:
    command, env = send_args
    result = _run(command, **env)
    assert result.returncode == 0, result.stderr
    uuid.UUID(result.stdout.strip())  # the event id


def test_without_credentials_the_cli_names_the_variables(send_args, tmp_path: Path) -> None:
    command, env = send_args
    result = _run(command, **env, NOTIPIPE_HOME=str(tmp_path))  # a home with no stack secrets
    assert result.returncode == 2
    assert "no Kafka credentials for the 'producer' role: set NOTIPIPE_KAFKA_USERNAME" in result.stderr


def test_a_missing_ca_file_is_named(send_args, tmp_path: Path) -> None:
    command, env = send_args
    result = _run(command, **env, NOTIPIPE_KAFKA_CA_FILE=str(tmp_path / "nowhere.crt"))
    assert result.returncode == 2
    assert f"NOTIPIPE_KAFKA_CA_FILE={tmp_path / 'nowhere.crt'} does not exist" in result.stderr


def test_a_wrong_password_from_the_variables_stops_the_cli(send_args) -> None:
    command, env = send_args
    result = _run(command, **env, NOTIPIPE_KAFKA_USERNAME="producer", NOTIPIPE_KAFKA_PASSWORD="wrong")
    assert result.returncode == 2
    assert "refused user 'producer'" in result.stderr and "NOTIPIPE_KAFKA_PASSWORD" in result.stderr


def test_a_missing_password_file_is_named(send_args, tmp_path: Path) -> None:
    command, env = send_args
    result = _run(command, **env, NOTIPIPE_KAFKA_USERNAME="producer",
                  NOTIPIPE_KAFKA_PASSWORD_FILE=str(tmp_path / "nothing"))
    assert result.returncode == 2
    assert f"NOTIPIPE_KAFKA_PASSWORD_FILE={tmp_path / 'nothing'} cannot be read" in result.stderr


def test_a_worker_with_a_foreign_ca_stops_and_says_why(pipeline_env: PipelineEnv, tmp_path: Path) -> None:
    result = _run(["worker"], NOTIPIPE_BOOTSTRAP_SERVERS=pipeline_env.stack.bootstrap_servers,
                  NOTIPIPE_REGISTRY_URL=pipeline_env.stack.registry_url,
                  NOTIPIPE_TOPIC_PREFIX=pipeline_env.prefix, NOTIPIPE_APP_ID=pipeline_env.stack.app_id,
                  NOTIPIPE_DATA_DIR=str(tmp_path / "data"), NOTIPIPE_WEB_PORT="29199",
                  NOTIPIPE_KAFKA_CA_FILE=str(_other_ca(tmp_path)))
    assert result.returncode == 2
    assert "does not verify against NOTIPIPE_KAFKA_CA_FILE=" in result.stderr


# --- each principal within its ACLs ---------------------------------------------------------------

def test_the_producer_writes_events_but_neither_reads_nor_writes_deliveries(
        pipeline_env: PipelineEnv) -> None:
    producer = access(pipeline_env, "producer")
    prefix = pipeline_env.prefix
    assert produce_error(producer, f"{prefix}notifications.events") is None
    deliveries = f"{prefix}notifications.deliveries.email"
    assert produce_error(producer, deliveries).code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert_cannot_read(producer, deliveries)


def test_the_worker_writes_deliveries_but_not_events(pipeline_env: PipelineEnv) -> None:
    worker = access(pipeline_env, "worker")
    prefix = pipeline_env.prefix
    assert produce_error(worker, f"{prefix}notifications.deliveries.push") is None
    error = produce_error(worker, f"{prefix}notifications.events")
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_ops_reads_the_dlq_and_the_producer_cannot(pipeline_env: PipelineEnv) -> None:
    dlq = f"{pipeline_env.prefix}notifications.dlq"
    assert produce_error(stack_access(pipeline_env.stack, "admin"), dlq) is None
    record = read_result(access(pipeline_env, "ops"), dlq, f"notipipe-ops-{uuid.uuid4().hex[:6]}")
    assert not isinstance(record, KafkaError), record
    assert (record.key(), record.value()) == (b"k", b"v")
    assert_cannot_read(access(pipeline_env, "producer"), dlq)


def test_monitoring_sees_groups_and_offsets_but_reads_no_records(pipeline_env: PipelineEnv) -> None:
    events = f"{pipeline_env.prefix}notifications.events"
    admin_access = stack_access(pipeline_env.stack, "admin")
    assert produce_error(admin_access, events) is None
    group = f"notipipe-ops-lag-{uuid.uuid4().hex[:6]}"
    committing = Consumer({**admin_access.confluent_config(), "group.id": group,
                           "enable.auto.commit": False})
    committing.commit(offsets=[TopicPartition(events, 0, 1)], asynchronous=False)
    committing.close()

    monitoring = access(pipeline_env, "monitoring")
    admin = AdminClient(monitoring.confluent_config())
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(events, 0)])
    committed = admin.list_consumer_group_offsets([request])[group].result(REFUSAL_S)
    assert [(tp.partition, tp.offset) for tp in committed.topic_partitions] == [(0, 1)]
    assert admin.describe_consumer_groups([group])[group].result(REFUSAL_S).group_id == group
    probe = Consumer({**monitoring.confluent_config(), "group.id": "unused"})
    try:
        assert probe.get_watermark_offsets(TopicPartition(events, 0), timeout=REFUSAL_S)[1] >= 1
    finally:
        probe.close()
    # It may see the topic and the group, so what stops it is the topic's READ right alone.
    assert topic_error(monitoring, events) is None
    error = read_result(monitoring, events, group)
    assert isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    committer = Consumer({**monitoring.confluent_config(), "group.id": group})
    try:
        with pytest.raises(KafkaException) as denied:  # nor commit a group's offsets
            committer.commit(offsets=[TopicPartition(events, 0, 0)], asynchronous=False)
    finally:
        committer.close()
    assert denied.value.args[0].code() in (KafkaError.GROUP_AUTHORIZATION_FAILED,
                                           KafkaError.TOPIC_AUTHORIZATION_FAILED)


# --- secrets ---------------------------------------------------------------------------------------

def test_secrets_are_private_and_off_the_command_lines(settings: StackSettings) -> None:
    directory = secrets_dir(settings)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    files = [p for p in directory.iterdir() if p.is_file()]
    assert files and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files), \
        {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    configs = [settings.run_dir / "kafka" / "server.properties", settings.run_dir / "connect" /
               "worker.properties", settings.run_dir / "registry" / "kafka.properties"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in configs)
    passwords = [(directory / password_secret_name(role)).read_text().strip()
                 for role in ("admin", "broker", "connect", "registry")]
    for name in ("kafka", "registry", "connect"):
        pid = int((settings.run_dir / f"{name}.pid").read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        assert not any(p in cmdline for p in passwords), f"a password is on {name}'s command line"


def test_kafka_tools_log_in_with_a_roles_client_config(settings: StackSettings,
                                                      pipeline_env: PipelineEnv) -> None:
    made = _run(["stack", "client-config", "--role", "monitoring"])
    assert made.returncode == 0, made.stderr
    config = Path(made.stdout.strip())
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    tool = subprocess.run(
        ["java", "-cp", str(settings.dist_dir / "kafka" / "libs" / "*"),
         "org.apache.kafka.tools.TopicCommand", "--bootstrap-server", settings.bootstrap_servers,
         "--command-config", str(config), "--list"],
        capture_output=True, text=True, timeout=120)
    assert tool.returncode == 0, tool.stderr[-2000:]
    assert f"{pipeline_env.prefix}notifications.events" in tool.stdout.split()
