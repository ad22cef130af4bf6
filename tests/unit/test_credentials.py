"""Generated secrets, the files derived from them, and how clients find their credentials."""

from __future__ import annotations

import hashlib
import stat
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from stack import secret_files
from stack.secrets import secret, secrets_dir
from stack.settings import StackSettings
from streams.connection import postgres
from streams.connection.credentials import BasicAuth, MissingCredential
from streams.connection.http import connect_client, registry_writer


def local(tmp_path: Path) -> StackSettings:
    return StackSettings.from_env({"NOTIPIPE_HOME": str(tmp_path)})


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _secret_in(home: str) -> str:
    return secret(StackSettings.from_env({"NOTIPIPE_HOME": home}), "shared")


def test_a_secret_is_generated_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    settings = local(tmp_path)
    first = secret(settings, "registry-password")
    assert len(first) == 32 and first.replace("-", "").replace("_", "").isalnum()
    assert secret(settings, "registry-password") == first
    assert secret(settings, "connect-password") != first
    assert mode(secrets_dir(settings)) == 0o700
    assert mode(secrets_dir(settings) / "registry-password") == 0o600
    assert sorted(p.name for p in secrets_dir(settings).iterdir()) == ["connect-password",
                                                                      "registry-password"]
    with pytest.raises(ValueError):
        secret(settings, "../escape")


def test_processes_asking_at_once_get_the_same_secret(tmp_path: Path) -> None:
    with ProcessPoolExecutor(4) as pool:
        values = list(pool.map(_secret_in, [str(tmp_path)] * 8))
    assert len(set(values)) == 1


def test_local_clients_default_to_the_generated_secrets(tmp_path: Path) -> None:
    settings = local(tmp_path)
    assert connect_client(settings, {}) == BasicAuth("notipipe-connect", secret(settings, "connect-password"))
    writer = registry_writer(settings, {})
    assert writer == BasicAuth("notipipe-schemas", secret(settings, "registry-password"))
    assert connect_client(settings, {"NOTIPIPE_CONNECT_PASSWORD": "given"}).password == "given"
    assert "given" not in repr(connect_client(settings, {"NOTIPIPE_CONNECT_PASSWORD": "given"}))
    assert BasicAuth("a", "b").header() == "Basic YTpi"
    # The local address given explicitly is still the local stack.
    explicit = StackSettings.from_env({"NOTIPIPE_HOME": str(tmp_path),
                                       "NOTIPIPE_CONNECT_URL": settings.connect_url})
    assert connect_client(explicit, {}).username == "notipipe-connect"


def test_servers_the_stack_did_not_start_need_their_variables(tmp_path: Path) -> None:
    elsewhere = StackSettings.from_env({"NOTIPIPE_HOME": str(tmp_path),
                                        "NOTIPIPE_CONNECT_URL": "http://connect:8083",
                                        "NOTIPIPE_REGISTRY_URL": "http://registry:8080/apis/ccompat/v7",
                                        "NOTIPIPE_POSTGRES_DSN": "host=db dbname=notipipe user=notipipe"})
    with pytest.raises(MissingCredential, match="NOTIPIPE_CONNECT_USERNAME"):
        connect_client(elsewhere, {})
    with pytest.raises(MissingCredential, match="NOTIPIPE_CONNECT_PASSWORD"):
        connect_client(elsewhere, {"NOTIPIPE_CONNECT_USERNAME": "ops"})
    with pytest.raises(MissingCredential, match="NOTIPIPE_REGISTRY_PASSWORD"):
        registry_writer(elsewhere, {"NOTIPIPE_REGISTRY_USERNAME": "ops"})
    with pytest.raises(MissingCredential, match="NOTIPIPE_POSTGRES_SINK_PASSWORD"):
        postgres.dsn(elsewhere, postgres.SINK, {})
    assert not (tmp_path / ".cache" / "secrets").exists(), "nothing generated for other servers"
    assert postgres.dsn(elsewhere, postgres.OWNER, {}) == "host=db dbname=notipipe user=notipipe"
    given = {"NOTIPIPE_POSTGRES_SINK_PASSWORD": "p w"}
    sink = conninfo_to_dict(postgres.dsn(elsewhere, postgres.SINK, given))
    assert sink == {"host": "db", "dbname": "notipipe", "user": "notipipe_sink", "password": "p w"}


def test_local_postgres_roles_connect_with_their_own_passwords(tmp_path: Path) -> None:
    settings = local(tmp_path)
    owner = conninfo_to_dict(settings.postgres_dsn)
    assert owner["user"] == "notipipe" and owner["password"] == secret(settings, "postgres-owner-password")
    assert owner["port"] == str(settings.postgres_port) and owner["host"] == "127.0.0.1"
    reader = conninfo_to_dict(postgres.dsn(settings, postgres.READER, {}))
    assert reader["user"] == "notipipe_reader"
    assert reader["password"] == secret(settings, "postgres-reader-password") != owner["password"]
    given = conninfo_to_dict(postgres.dsn(settings, postgres.OWNER, {"NOTIPIPE_POSTGRES_PASSWORD": "mine"}))
    assert given["password"] == "mine"


def test_the_registry_users_file_holds_a_digest_not_the_password(tmp_path: Path) -> None:
    settings = local(tmp_path)
    path = secret_files.registry_users(settings)
    text = path.read_text()
    password = secret(settings, "registry-password")
    digest = hashlib.sha512(f"notipipe-schemas:Quarkus:{password}".encode()).hexdigest()
    assert password not in text
    assert f"quarkus.security.users.embedded.users.notipipe-schemas={digest}" in text
    assert "quarkus.security.users.embedded.roles.notipipe-schemas=sr-developer" in text
    assert mode(path) == 0o600


def test_connect_and_connector_secret_files(tmp_path: Path) -> None:
    settings = local(tmp_path)
    jaas = secret_files.connect_jaas(settings).read_text()
    credentials = secrets_dir(settings) / "connect-credentials.properties"
    assert f'file="{credentials}"' in jaas and "PropertyFileLoginModule required" in jaas
    assert credentials.read_text() == f"notipipe-connect={secret(settings, 'connect-password')}\n"
    path = secret_files.connector_secrets(settings, {"NOTIPIPE_SMS_GATEWAY_TOKEN": "real-sms-token"})
    values = dict(line.split("=", 1) for line in path.read_text().splitlines())
    assert values == {"postgres.sink.password": secret(settings, "postgres-sink-password"),
                      "gateway.email.token": secret(settings, "gateway-email-token"),
                      "gateway.sms.token": "real-sms-token",
                      "gateway.push.token": secret(settings, "gateway-push-token")}
    tokens = secret_files.gateway_tokens(settings).read_text()
    assert f"sms={secret(settings, 'gateway-sms-token')}" in tokens, "the stub keeps the generated one"
    assert all(mode(p) == 0o600 for p in secrets_dir(settings).iterdir())


def test_property_values_are_escaped_for_java() -> None:
    assert secret_files.property_value("a\\b=c:d") == "a\\\\b=c:d"
    assert secret_files.property_value(" lead") == "\\ lead"
    with pytest.raises(ValueError):
        secret_files.property_value("two\nlines")


def test_write_private_replaces_only_when_changed(tmp_path: Path) -> None:
    path = tmp_path / "f"
    assert secret_files.write_private(path, "a")
    assert not secret_files.write_private(path, "a")
    assert secret_files.write_private(path, "b") and path.read_text() == "b" and mode(path) == 0o600
