"""KafkaAccess: how each client's Kafka settings are read from the environment and rendered."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from stack.tls import new_ca
from streams.connection.kafka import (
    KafkaAccess,
    KafkaConfigError,
    kafka_access,
    password_secret_name,
)


@pytest.fixture(scope="module")
def ca_pem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("ca")
    new_ca(directory / "ca.key", directory / "ca.crt")
    return directory / "ca.crt"


@pytest.fixture
def local_home(tmp_path: Path, ca_pem: Path) -> Path:
    """A project home with the local stack's secrets: a CA and the worker's password."""
    secrets = tmp_path / ".cache" / "secrets"
    secrets.mkdir(parents=True)
    (secrets / "kafka-ca.crt").write_text(ca_pem.read_text())
    (secrets / password_secret_name("worker")).write_text("local-worker-secret\n")
    return tmp_path


def test_the_local_stacks_credentials_are_the_default(local_home: Path) -> None:
    access = KafkaAccess.from_env("worker", {"NOTIPIPE_HOME": str(local_home),
                                             "NOTIPIPE_BOOTSTRAP_SERVERS": "127.0.0.1:29092"})
    assert (access.security_protocol, access.sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (access.username, access.password) == ("worker", "local-worker-secret")
    assert access.ca_file == (local_home / ".cache" / "secrets" / "kafka-ca.crt").resolve()
    assert access.bootstrap_servers == "127.0.0.1:29092"


def test_variables_override_the_local_stack(local_home: Path, tmp_path: Path, ca_pem: Path) -> None:
    password_file = tmp_path / "pw"
    password_file.write_text("from-a-file\n")
    access = KafkaAccess.from_env("worker", {
        "NOTIPIPE_HOME": str(local_home), "NOTIPIPE_KAFKA_USERNAME": "svc-router",
        "NOTIPIPE_KAFKA_PASSWORD_FILE": str(password_file), "NOTIPIPE_KAFKA_CA_FILE": str(ca_pem),
        "NOTIPIPE_KAFKA_SASL_MECHANISM": "scram-sha-256"})
    assert (access.username, access.password, access.sasl_mechanism) == (
        "svc-router", "from-a-file", "SCRAM-SHA-256")
    assert access.ca_given and access.password_file == password_file


def test_without_credentials_the_error_names_the_variables(tmp_path: Path) -> None:
    with pytest.raises(KafkaConfigError, match="set NOTIPIPE_KAFKA_USERNAME and NOTIPIPE_KAFKA_PASSWORD"):
        KafkaAccess.from_env("producer", {"NOTIPIPE_HOME": str(tmp_path)})


@pytest.mark.parametrize(("env", "named"), [
    ({"NOTIPIPE_KAFKA_USERNAME": "u"}, "NOTIPIPE_KAFKA_USERNAME='u' has no password"),
    ({"NOTIPIPE_KAFKA_PASSWORD": "p"}, "NOTIPIPE_KAFKA_USERNAME is not"),
    ({"NOTIPIPE_KAFKA_USERNAME": "u", "NOTIPIPE_KAFKA_PASSWORD_FILE": "/nonexistent/pw"},
     "NOTIPIPE_KAFKA_PASSWORD_FILE=/nonexistent/pw cannot be read"),
    ({"NOTIPIPE_KAFKA_USERNAME": "u", "NOTIPIPE_KAFKA_PASSWORD": "p", "NOTIPIPE_KAFKA_CA_FILE": "/no/ca.pem"},
     "NOTIPIPE_KAFKA_CA_FILE=/no/ca.pem does not exist"),
    ({"NOTIPIPE_KAFKA_SECURITY_PROTOCOL": "TLS"}, "NOTIPIPE_KAFKA_SECURITY_PROTOCOL='TLS' is not one of"),
    ({"NOTIPIPE_KAFKA_SASL_MECHANISM": "GSSAPI"}, "NOTIPIPE_KAFKA_SASL_MECHANISM='GSSAPI' is not one of"),
])
def test_bad_settings_name_the_variable(env: dict[str, str], named: str, tmp_path: Path) -> None:
    with pytest.raises(KafkaConfigError) as error:
        KafkaAccess.from_env("producer", {"NOTIPIPE_HOME": str(tmp_path), **env})
    assert named in str(error.value)


def test_a_ca_file_that_is_not_a_certificate_is_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(KafkaConfigError, match="is not a readable PEM certificate"):
        KafkaAccess.from_env("producer", {"NOTIPIPE_KAFKA_USERNAME": "u", "NOTIPIPE_KAFKA_PASSWORD": "p",
                                          "NOTIPIPE_KAFKA_CA_FILE": str(garbage)})


def test_plaintext_needs_no_credentials(tmp_path: Path) -> None:
    access = KafkaAccess.from_env("producer", {"NOTIPIPE_HOME": str(tmp_path),
                                               "NOTIPIPE_KAFKA_SECURITY_PROTOCOL": "plaintext"})
    assert access.confluent_config() == {"bootstrap.servers": "127.0.0.1:9092",
                                         "security.protocol": "PLAINTEXT"}
    assert access.java_properties() == ["security.protocol=PLAINTEXT"]
    assert access.faust_app_kwargs() == {"broker": "kafka://127.0.0.1:9092"}


def test_the_password_stays_out_of_repr_and_str(local_home: Path) -> None:
    access = kafka_access("worker", "b:1", {"NOTIPIPE_HOME": str(local_home)})
    assert "local-worker-secret" not in repr(access) + str(access)
    assert str(access) == "SASL_SSL://worker@b:1"


def test_librdkafka_settings_verify_the_broker_and_producers_are_idempotent(local_home: Path) -> None:
    access = kafka_access("worker", "b:1", {"NOTIPIPE_HOME": str(local_home)})
    config = access.producer_config()
    assert config["bootstrap.servers"] == "b:1"
    assert config["ssl.endpoint.identification.algorithm"] == "https"
    assert config["ssl.ca.location"] == str(access.ca_file)
    assert (config["sasl.mechanism"], config["sasl.username"]) == ("SCRAM-SHA-512", "worker")
    assert (config["acks"], config["enable.idempotence"]) == ("all", True)
    assert "acks" not in access.confluent_config()  # consumers and admin clients get no producer keys


def test_faust_gets_sasl_ssl_with_a_verifying_context(local_home: Path) -> None:
    access = kafka_access("worker", "b:1", {"NOTIPIPE_HOME": str(local_home)})
    kwargs = access.faust_app_kwargs()
    assert kwargs["broker"] == "kafka://b:1"
    assert isinstance(kwargs["broker_credentials"], faust.SASLCredentials)
    # What faust-streaming hands to aiokafka for these credentials.
    auth = credentials_to_aiokafka_auth(kwargs["broker_credentials"])
    assert (auth["security_protocol"], auth["sasl_mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (auth["sasl_plain_username"], auth["sasl_plain_password"]) == ("worker", "local-worker-secret")
    context = auth["ssl_context"]
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED


def test_java_properties_quote_the_credentials(tmp_path: Path) -> None:
    access = KafkaAccess("b:1", "SASL_SSL", "SCRAM-SHA-512", "svc", 'p"a\\ss', ca_file=tmp_path / "ca.pem")
    lines = dict(line.split("=", 1) for line in access.java_properties("producer."))
    # java.util.Properties reads `\\` as `\`; JAAS then reads `\"` as `"` and `\\` as `\`.
    assert lines["producer.sasl.jaas.config"] == (
        'org.apache.kafka.common.security.scram.ScramLoginModule required username="svc" '
        'password="p\\\\"a\\\\\\\\ss";')
    assert lines["producer.ssl.truststore.type"] == "PEM"
    assert lines["producer.ssl.truststore.location"] == str(tmp_path / "ca.pem")
    assert lines["producer.ssl.endpoint.identification.algorithm"] == "https"


def test_a_child_process_gets_the_same_access(local_home: Path) -> None:
    access = kafka_access("worker", "b:1", {"NOTIPIPE_HOME": str(local_home)})
    again = KafkaAccess.from_env("anything", access.environ())
    assert again.confluent_config() == access.confluent_config()
    assert "NOTIPIPE_KAFKA_PASSWORD" not in access.environ()  # handed on by its file


def test_messages_say_what_went_wrong(local_home: Path) -> None:
    access = kafka_access("worker", "b:1", {"NOTIPIPE_HOME": str(local_home)})
    auth = access.explain(["sasl_ssl://b:1/bootstrap: SASL authentication error: Authentication "
                           "failed during authentication due to invalid credentials"])
    assert auth.startswith("Kafka at b:1 refused user 'worker'")
    plaintext = KafkaAccess("b:1", "PLAINTEXT").explain(
        ["b:1/bootstrap: Disconnected: connection closed by peer (after 0ms in state APIVERSION_QUERY)"])
    assert "does not speak NOTIPIPE_KAFKA_SECURITY_PROTOCOL=PLAINTEXT" in plaintext
    down = access.explain(["Connect to ipv4#127.0.0.1:1 failed: Connection refused"])
    assert down.startswith("cannot reach Kafka at b:1")
