"""How the stack's own code (provisioning, health checks, tools) reaches Kafka as a given role."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from stack.secrets import secret, secrets_dir
from stack.settings import StackSettings
from stack.tls import TlsFiles
from streams.connection.kafka import ACCESS_VARIABLES, KafkaAccess, password_secret_name

MECHANISM = "SCRAM-SHA-512"


def stack_access(settings: StackSettings, role: str, environ: Mapping[str, str] = os.environ) -> KafkaAccess:
    """The local stack's own credentials for `role` (NOTIPIPE_KAFKA_* variables are for other
    clusters and do not apply); for servers the stack did not start (`stack init` with
    NOTIPIPE_BOOTSTRAP_SERVERS), the NOTIPIPE_KAFKA_* variables as every client reads them."""
    if settings.bootstrap_override:
        return KafkaAccess.from_env(role, {**environ, "NOTIPIPE_HOME": str(settings.home)})
    local = {k: v for k, v in environ.items() if k not in ACCESS_VARIABLES}
    local["NOTIPIPE_HOME"] = str(settings.home)
    return KafkaAccess.from_env(role, local).at(settings.bootstrap_servers)


def service_access(settings: StackSettings, role: str) -> KafkaAccess:
    """How a service the local stack runs (Connect, the registry) logs in as `role`; its password
    is generated on first use (`stack up` creates the user with it before the service starts)."""
    name = password_secret_name(role)
    password = secret(settings, name)
    return KafkaAccess(settings.bootstrap_servers, "SASL_SSL", MECHANISM, role, password,
                       password_file=secrets_dir(settings) / name, ca_file=TlsFiles.of(settings).ca_cert,
                       source="the local stack's")


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it holds a password), replacing any older one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(temp, path)
