"""Files the local stack's servers read credentials from, derived from the generated secrets
(stack/secrets.py) and written with mode 0600 into the secrets folder:

- registry-users.properties: Apicurio Registry's one user (read through `quarkus.config.locations`),
  as a SHA-512 digest of user:realm:password, and its role.
- connect-credentials.properties + connect-jaas.conf: the user and password of Connect's REST API
  (JAAS section `KafkaConnect`, `PropertyFileLoginModule`; `-Djava.security.auth.login.config`).
- connector-secrets.properties: what connector configs name as `${file:<path>:<key>}` (Connect's
  `FileConfigProvider`): `postgres.sink.password`, `gateway.<channel>.token`.
- gateway-tokens.properties: `<channel>=<token>`, the tokens the provider stub requires.

A gateway token for a real provider is given as NOTIPIPE_<CHANNEL>_GATEWAY_TOKEN (e.g.
NOTIPIPE_EMAIL_GATEWAY_TOKEN); without it the channel's generated token (the stub's) is used.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from stack.connectors_setup import CONNECTOR_SECRETS_FILE
from stack.secrets import secret, secrets_dir
from stack.settings import StackSettings
from streams.connection import postgres
from streams.connection.http import CONNECT_PASSWORD, CONNECT_USER, REGISTRY_PASSWORD, REGISTRY_USER

GATEWAY_CHANNELS = ("email", "sms", "push")
# The embedded realm's name, part of the digest; fixed when the registry was built.
REGISTRY_REALM = "Quarkus"
REGISTRY_WRITER_ROLE = "sr-developer"


def write_private(path: Path, text: str) -> bool:
    """Write `text` readable by its owner only (replacing the file atomically). True if it changed."""
    try:
        if path.read_text() == text:
            return False
    except FileNotFoundError:
        pass
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(partial, path)
    return True


def property_value(value: str) -> str:
    """`value` as the value of a Java properties line (what FileConfigProvider and JAAS read)."""
    if any(c in value for c in "\r\n"):
        raise ValueError("a credential cannot span lines")
    escaped = value.replace("\\", "\\\\")
    return "\\" + escaped if escaped.startswith((" ", "\t")) else escaped


def gateway_token_secret(channel: str) -> str:
    return f"gateway-{channel}-token"


def gateway_token(settings: StackSettings, channel: str, environ: Mapping[str, str] = os.environ) -> str:
    return environ.get(f"NOTIPIPE_{channel.upper()}_GATEWAY_TOKEN") or secret(
        settings, gateway_token_secret(channel))


def registry_users(settings: StackSettings) -> Path:
    path = secrets_dir(settings) / "registry-users.properties"
    password = secret(settings, REGISTRY_PASSWORD.secret_name)
    digest = hashlib.sha512(f"{REGISTRY_USER}:{REGISTRY_REALM}:{password}".encode()).hexdigest()
    write_private(path, "\n".join([
        "quarkus.security.users.embedded.plain-text=false",
        "quarkus.security.users.embedded.algorithm=digest-sha-512",
        f"quarkus.security.users.embedded.users.{REGISTRY_USER}={digest}",
        f"quarkus.security.users.embedded.roles.{REGISTRY_USER}={REGISTRY_WRITER_ROLE}",
        "",
    ]))
    return path


def connect_jaas(settings: StackSettings) -> Path:
    """The JAAS config of Connect's REST API (and the credentials file it names)."""
    folder = secrets_dir(settings)
    credentials = folder / "connect-credentials.properties"
    write_private(credentials,
                  f"{CONNECT_USER}={property_value(secret(settings, CONNECT_PASSWORD.secret_name))}\n")
    jaas = folder / "connect-jaas.conf"
    write_private(jaas, "KafkaConnect {\n"
                        "  org.apache.kafka.connect.rest.basic.auth.extension.PropertyFileLoginModule"
                        f' required\n  file="{credentials}";\n}};\n')
    return jaas


def connector_secrets(settings: StackSettings, environ: Mapping[str, str] = os.environ) -> Path:
    path = secrets_dir(settings) / CONNECTOR_SECRETS_FILE
    sink_password = postgres.password(settings, postgres.SINK, environ)
    lines = [f"postgres.sink.password={property_value(sink_password)}"]
    lines += [f"gateway.{channel}.token={property_value(gateway_token(settings, channel, environ))}"
              for channel in GATEWAY_CHANNELS]
    write_private(path, "\n".join(lines) + "\n")
    return path


def gateway_tokens(settings: StackSettings) -> Path:
    """The tokens the provider stub requires: each channel's generated one."""
    path = secrets_dir(settings) / "gateway-tokens.properties"
    write_private(path, "".join(f"{channel}={secret(settings, gateway_token_secret(channel))}\n"
                                for channel in GATEWAY_CHANNELS))
    return path


def write_all(settings: StackSettings) -> list[Path]:
    """Every secret and every file derived from them, as `stack up` would make them."""
    from streams.connection import http

    for name in (http.REGISTRY_PASSWORD.secret_name, http.CONNECT_PASSWORD.secret_name,
                 *(role.password.secret_name for role in postgres.ROLES)):
        secret(settings, name)
    registry_users(settings)
    connect_jaas(settings)
    connector_secrets(settings)
    gateway_tokens(settings)
    return sorted(secrets_dir(settings).iterdir())
