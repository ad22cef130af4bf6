"""`KafkaAccess`: where Kafka is and how a client of a given role authenticates to it.

| Variable | Default | Meaning |
|---|---|---|
| `NOTIPIPE_BOOTSTRAP_SERVERS` | `127.0.0.1:9092` | Kafka brokers |
| `NOTIPIPE_KAFKA_SECURITY_PROTOCOL` | `SASL_SSL` | `SASL_SSL`, `SSL`, `SASL_PLAINTEXT` or `PLAINTEXT` |
| `NOTIPIPE_KAFKA_SASL_MECHANISM` | `SCRAM-SHA-512` | `SCRAM-SHA-512`, `SCRAM-SHA-256` or `PLAIN` |
| `NOTIPIPE_KAFKA_USERNAME` | the role's local user | SASL user name |
| `NOTIPIPE_KAFKA_PASSWORD` | the role's local password | SASL password... |
| `NOTIPIPE_KAFKA_PASSWORD_FILE` | unset | ...or a file holding it (read at start) |
| `NOTIPIPE_KAFKA_CA_FILE` | the local stack's CA | PEM file of the CA the broker's certificate chains to |

With none of the credential variables set, a process uses the local stack's credentials for its
role (`.cache/secrets/`, written by `notipipe stack up`; `NOTIPIPE_HOME` moves `.cache/`), so the
CLI works on the local stack with no setup. The broker's host name is always verified against its
certificate.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
PROTOCOLS = ("SASL_SSL", "SSL", "SASL_PLAINTEXT", "PLAINTEXT")
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
_PROJECT_ROOT = Path(__file__).resolve().parents[2]
# What differs between two of librdkafka's reports of the same failure: the log prefix, the timing.
_LOG_NOISE = re.compile(r"^FAIL \[[^]]*\] \[[^]]*\]: | \(after \d+ms in state \w+\)")

# How a client authenticates (NOTIPIPE_BOOTSTRAP_SERVERS says where): what `environ()` hands on.
ACCESS_VARIABLES = ("NOTIPIPE_KAFKA_SECURITY_PROTOCOL", "NOTIPIPE_KAFKA_SASL_MECHANISM",
                    "NOTIPIPE_KAFKA_USERNAME", "NOTIPIPE_KAFKA_PASSWORD", "NOTIPIPE_KAFKA_PASSWORD_FILE",
                    "NOTIPIPE_KAFKA_CA_FILE")

# File names in the local stack's secrets directory (stack/secrets.py writes them).
CA_CERT_FILE = "kafka-ca.crt"


def password_secret_name(role: str) -> str:
    """The secret holding the local stack's SCRAM password of `role` (its user name is the role)."""
    return f"kafka-{role}-password"


def local_secrets_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """Where the local stack keeps its secrets: `<NOTIPIPE_HOME or the project>/.cache/secrets`."""
    return Path(environ.get("NOTIPIPE_HOME") or _PROJECT_ROOT).resolve() / ".cache" / "secrets"


class KafkaConfigError(ValueError):
    """The Kafka settings cannot work; the message names the variable and what to do."""


class KafkaAccessError(RuntimeError):
    """The broker refused or could not be reached with these settings; the message says why."""


@dataclass(frozen=True)
class KafkaAccess:
    bootstrap_servers: str
    security_protocol: str = "SASL_SSL"
    sasl_mechanism: str = "SCRAM-SHA-512"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    password_file: Path | None = None  # where the password came from, handed on to child processes
    ca_file: Path | None = None
    # Where the values came from, for error messages: variables, or the local stack's secrets.
    source: str = "NOTIPIPE_KAFKA_*"
    ca_given: bool = False  # NOTIPIPE_KAFKA_CA_FILE, not the local stack's CA

    def __str__(self) -> str:
        who = f"{self.username}@" if self.username else ""
        return f"{self.security_protocol}://{who}{self.bootstrap_servers}"

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SASL_SSL", "SSL")

    @classmethod
    def from_env(cls, role: str, environ: Mapping[str, str] = os.environ) -> KafkaAccess:
        """The settings of a client acting as `role`. Raises KafkaConfigError naming what to set."""
        protocol = (environ.get("NOTIPIPE_KAFKA_SECURITY_PROTOCOL") or "SASL_SSL").upper()
        if protocol not in PROTOCOLS:
            raise KafkaConfigError(f"NOTIPIPE_KAFKA_SECURITY_PROTOCOL={protocol!r} is not one of "
                                   f"{', '.join(PROTOCOLS)}")
        mechanism = (environ.get("NOTIPIPE_KAFKA_SASL_MECHANISM") or "SCRAM-SHA-512").upper()
        if mechanism not in MECHANISMS:
            raise KafkaConfigError(f"NOTIPIPE_KAFKA_SASL_MECHANISM={mechanism!r} is not one of "
                                   f"{', '.join(MECHANISMS)}")
        access = cls(environ.get("NOTIPIPE_BOOTSTRAP_SERVERS") or DEFAULT_BOOTSTRAP, protocol, mechanism)
        local = local_secrets_dir(environ)
        if access.uses_sasl:
            access = access._with_credentials(role, environ, local)
        if access.uses_tls:
            access = access._with_ca(environ, local)
        return access

    def _with_credentials(self, role: str, environ: Mapping[str, str], local: Path) -> KafkaAccess:
        username = environ.get("NOTIPIPE_KAFKA_USERNAME") or None
        password = environ.get("NOTIPIPE_KAFKA_PASSWORD") or None
        password_file = environ.get("NOTIPIPE_KAFKA_PASSWORD_FILE") or None
        if username is None and password is None and password_file is None:
            local_file = local / password_secret_name(role)
            if not local_file.is_file():
                raise KafkaConfigError(
                    f"no Kafka credentials for the {role!r} role: set NOTIPIPE_KAFKA_USERNAME and "
                    "NOTIPIPE_KAFKA_PASSWORD (or NOTIPIPE_KAFKA_PASSWORD_FILE), or bring the local "
                    f"stack up (`notipipe stack up`), which creates them in {local}")
            return dataclasses.replace(self, username=role, password=_read_password(local_file, None),
                                       password_file=local_file, source="the local stack's")
        if username is None:
            raise KafkaConfigError("NOTIPIPE_KAFKA_PASSWORD(_FILE) is set but NOTIPIPE_KAFKA_USERNAME "
                                   "is not: set the user name that goes with the password")
        if password is None and password_file is None:
            raise KafkaConfigError(f"NOTIPIPE_KAFKA_USERNAME={username!r} has no password: set "
                                   "NOTIPIPE_KAFKA_PASSWORD or NOTIPIPE_KAFKA_PASSWORD_FILE")
        path = Path(password_file) if password is None and password_file else None
        if path is not None:
            password = _read_password(path, "NOTIPIPE_KAFKA_PASSWORD_FILE")
        assert password is not None
        if "\n" in password:
            raise KafkaConfigError("NOTIPIPE_KAFKA_PASSWORD holds a line break: give the password alone")
        return dataclasses.replace(self, username=username, password=password, password_file=path)

    def _with_ca(self, environ: Mapping[str, str], local: Path) -> KafkaAccess:
        given = environ.get("NOTIPIPE_KAFKA_CA_FILE") or None
        path = Path(given) if given else local / CA_CERT_FILE
        what = f"NOTIPIPE_KAFKA_CA_FILE={given}" if given else f"the local stack's CA {path}"
        if not path.is_file():
            if given:
                raise KafkaConfigError(f"{what} does not exist: give the PEM file of the CA that "
                                       "signed the broker's certificate")
            raise KafkaConfigError(
                f"no CA certificate to verify the broker with: set NOTIPIPE_KAFKA_CA_FILE to the PEM "
                f"file of the CA that signed the broker's certificate, or bring the local stack up "
                f"(`notipipe stack up`), which creates {path}")
        try:
            ssl.create_default_context(cafile=str(path))
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise KafkaConfigError(f"{what} is not a readable PEM certificate ({exc}): give the "
                                   "CA certificate in PEM form") from None
        return dataclasses.replace(self, ca_file=path.resolve(), ca_given=bool(given))

    def at(self, bootstrap_servers: str | None) -> KafkaAccess:
        """The same credentials for other servers (a caller's own bootstrap setting); unchanged if None."""
        if not bootstrap_servers:
            return self
        return dataclasses.replace(self, bootstrap_servers=bootstrap_servers)

    # --- settings of each kind of client ---------------------------------------------------------

    def confluent_config(self) -> dict[str, Any]:
        """For confluent-kafka's Producer, Consumer and AdminClient (librdkafka)."""
        config: dict[str, Any] = {"bootstrap.servers": self.bootstrap_servers,
                                  "security.protocol": self.security_protocol}
        if self.uses_sasl:
            config.update({"sasl.mechanism": self.sasl_mechanism, "sasl.username": self.username,
                           "sasl.password": self.password})
        if self.uses_tls:
            config.update({"ssl.ca.location": str(self.ca_file),
                           "ssl.endpoint.identification.algorithm": "https"})
        return config

    def producer_config(self) -> dict[str, Any]:
        """`confluent_config()` for a producer: every write acknowledged by all in-sync replicas,
        idempotent (a retried batch is not written twice)."""
        from streams.connection.produce import durable

        return durable(self.confluent_config())

    def ssl_context(self) -> ssl.SSLContext:
        """Verifies the broker's certificate against the CA and its host name."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.check_hostname = True
        context.verify_mode = ssl.CERT_REQUIRED
        return context

    def faust_app_kwargs(self) -> dict[str, Any]:
        """`broker` and `broker_credentials` for `faust.App` (faust-streaming maps SASLCredentials
        with an SSL context to aiokafka's SASL_SSL, with SSLCredentials to SSL)."""
        import faust

        kwargs: dict[str, Any] = {"broker": f"kafka://{self.bootstrap_servers}"}
        if self.uses_sasl:
            kwargs["broker_credentials"] = faust.SASLCredentials(
                username=self.username, password=self.password, mechanism=self.sasl_mechanism,
                ssl_context=self.ssl_context() if self.uses_tls else None)
        elif self.uses_tls:
            kwargs["broker_credentials"] = faust.SSLCredentials(self.ssl_context())
        return kwargs

    def java_properties(self, prefix: str = "") -> list[str]:
        """Security lines of a Java client's .properties (Connect, the registry, Kafka's tools),
        each key after `prefix` (e.g. `producer.`). They hold the password: write them to a file
        only its owner reads."""
        lines = [f"{prefix}security.protocol={self.security_protocol}"]
        if self.uses_sasl:
            module = ("org.apache.kafka.common.security.plain.PlainLoginModule"
                      if self.sasl_mechanism == "PLAIN"
                      else "org.apache.kafka.common.security.scram.ScramLoginModule")
            jaas = (f'{module} required username="{_jaas_quote(self.username or "")}" '
                    f'password="{_jaas_quote(self.password or "")}";')
            lines += [f"{prefix}sasl.mechanism={self.sasl_mechanism}",
                      f"{prefix}sasl.jaas.config={_properties_escape(jaas)}"]
        if self.uses_tls:
            lines += [f"{prefix}ssl.truststore.type=PEM",
                      f"{prefix}ssl.truststore.location={_properties_escape(str(self.ca_file))}",
                      f"{prefix}ssl.endpoint.identification.algorithm=https"]
        return lines

    def environ(self) -> dict[str, str]:
        """The NOTIPIPE_* variables that give a child process these same settings (the password
        by its file when it came from one)."""
        env = {"NOTIPIPE_BOOTSTRAP_SERVERS": self.bootstrap_servers,
               "NOTIPIPE_KAFKA_SECURITY_PROTOCOL": self.security_protocol,
               "NOTIPIPE_KAFKA_SASL_MECHANISM": self.sasl_mechanism}
        if self.uses_sasl:
            env["NOTIPIPE_KAFKA_USERNAME"] = self.username or ""
            if self.password_file is not None:
                env["NOTIPIPE_KAFKA_PASSWORD_FILE"] = str(self.password_file)
            else:
                env["NOTIPIPE_KAFKA_PASSWORD"] = self.password or ""
        if self.uses_tls:
            env["NOTIPIPE_KAFKA_CA_FILE"] = str(self.ca_file)
        return env

    # --- checking ---------------------------------------------------------------------------------

    def verify(self, timeout_s: float = 20.0) -> None:
        """Connect and authenticate once; raise KafkaAccessError saying what is wrong if that
        fails. A refused login, certificate or protocol fails at once, anything else (a broker
        that is down) at the deadline."""
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import AdminClient

        errors: list[Any] = []
        client_log = _Collected()
        admin = AdminClient({**self.confluent_config(), "error_cb": errors.append,
                             "logger": client_log.logger})
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                admin.list_topics(timeout=max(0.1, min(1.0, deadline - time.monotonic())))
                return
            except KafkaException as exc:
                last = exc.args[0]
            admin.poll(0)  # serves the error and log callbacks
            refused = [e for e in errors if e.code() in (KafkaError._AUTHENTICATION, KafkaError._SSL)]
            # The broker hanging up on every attempt right after connecting: the wrong protocol.
            hung_up = [line for line in client_log.lines if "closed by peer" in line]
            if refused or len(hung_up) >= 3 or time.monotonic() >= deadline:
                raise KafkaAccessError(self.explain([*refused, *hung_up, *errors, last]))

    def explain(self, errors: list[Any]) -> str:
        """What a client's errors (librdkafka's KafkaError or log lines) mean, and what to do."""
        texts = list(dict.fromkeys(_LOG_NOISE.sub("", e.str() if hasattr(e, "str") else str(e)).strip()
                                   for e in errors))
        said = " | ".join(texts[:2])
        lowered = " ".join(texts).lower()
        ca = (f"NOTIPIPE_KAFKA_CA_FILE={self.ca_file}" if self.ca_given
              else f"the local stack's CA {self.ca_file} (NOTIPIPE_KAFKA_CA_FILE gives another)")
        where = f"Kafka at {self.bootstrap_servers}"
        if "authentication" in lowered and ("sasl" in lowered or "credentials" in lowered):
            return (f"{where} refused user {self.username!r}: wrong password or no such user "
                    f"({self.source} credentials; NOTIPIPE_KAFKA_USERNAME with NOTIPIPE_KAFKA_PASSWORD "
                    f"or NOTIPIPE_KAFKA_PASSWORD_FILE give others). Client said: {said}")
        if "certificate verify failed" in lowered or "could not be verified" in lowered:
            reason = self.tls_verify_error() or "see below"
            if "expired" in reason:
                return (f"{where}: a certificate of the broker's chain has expired ({reason}; "
                        f"{self._ca_validity()}): renew it, or give the current CA in {ca}. "
                        f"Client said: {said}")
            if "hostname" in reason.lower() or "ip address mismatch" in reason.lower():
                return (f"{where}: the broker's certificate is not for this host ({reason}): connect "
                        f"with a name or address its certificate lists. Client said: {said}")
            return (f"{where}: the broker's certificate does not verify against {ca} ({reason}): give "
                    f"the CA that signed the broker's certificate. Client said: {said}")
        if "apiversion" in lowered or ("closed by peer" in lowered and not self.uses_tls):
            return (f"{where} hung up while the connection was set up: its listener does not speak "
                    f"NOTIPIPE_KAFKA_SECURITY_PROTOCOL={self.security_protocol} (the local stack's "
                    f"speaks SASL_SSL). Client said: {said}")
        if "closed by peer" in lowered and self.uses_tls and not self.uses_sasl:
            return (f"{where} hung up after TLS: its listener wants a SASL login; set "
                    "NOTIPIPE_KAFKA_SECURITY_PROTOCOL=SASL_SSL with NOTIPIPE_KAFKA_USERNAME and "
                    f"NOTIPIPE_KAFKA_PASSWORD. Client said: {said}")
        return (f"cannot reach {where}: is it running (`notipipe stack status`)? Set "
                f"NOTIPIPE_BOOTSTRAP_SERVERS otherwise. Client said: {said}")

    def tls_verify_error(self, timeout_s: float = 5.0) -> str | None:
        """Why the first bootstrap server's certificate does not verify against the CA, as
        OpenSSL says it (expired, unknown issuer, host name mismatch); None if it does."""
        host, _, port = self.bootstrap_servers.split(",")[0].strip().rpartition(":")
        try:
            context = self.ssl_context()
            with socket.create_connection((host, int(port)), timeout=timeout_s) as raw, \
                    context.wrap_socket(raw, server_hostname=host):
                return None
        except ssl.SSLCertVerificationError as exc:
            return exc.verify_message
        except (OSError, ValueError) as exc:
            return f"the TLS check failed: {exc}"

    def _ca_validity(self) -> str:
        try:
            context = ssl.create_default_context(cafile=str(self.ca_file))
            ends = [cert["notAfter"] for cert in context.get_ca_certs() if "notAfter" in cert]
        except (ssl.SSLError, OSError, ValueError):
            return f"the CA in {self.ca_file} cannot be read"
        now = datetime.now(UTC).timestamp()
        expired = [end for end in ends if ssl.cert_time_to_seconds(end) < now]
        if expired:
            return f"the CA in {self.ca_file} expired on {expired[0]}"
        return f"the CA in {self.ca_file} is valid: the broker's own certificate has expired"


class _Collected(logging.Handler):
    """librdkafka's log lines of one client, kept to explain a failure (and not printed)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.logger = logging.Logger(f"notipipe.kafka-check.{id(self)}")
        self.logger.addHandler(self)
        self.logger.propagate = False

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def kafka_access(role: str, bootstrap_servers: str | None = None,
                 environ: Mapping[str, str] = os.environ) -> KafkaAccess:
    """`KafkaAccess.from_env(role)`, at `bootstrap_servers` when the caller has its own setting."""
    return KafkaAccess.from_env(role, environ).at(bootstrap_servers)


def _read_password(path: Path, variable: str | None) -> str:
    try:
        password = path.read_text().strip()
    except OSError as exc:
        where = f"{variable}={path}" if variable else f"the local stack's password file {path}"
        raise KafkaConfigError(f"{where} cannot be read ({exc.strerror}): give a readable file "
                               "that holds the password") from None
    if not password or "\n" in password:
        what = f"{variable}={path}" if variable else str(path)
        raise KafkaConfigError(f"{what} must hold the password on one line; it holds "
                               f"{'nothing' if not password else 'several lines'}")
    return password


def _jaas_quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _properties_escape(value: str) -> str:
    """A value as java.util.Properties reads it back unchanged."""
    return value.replace("\\", "\\\\").replace("\n", "\\n")
