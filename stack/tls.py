"""The local stack's own CA and the broker's certificate, made with openssl into `.cache/secrets/`.

The CA signs the broker's certificate (SAN IP:127.0.0.1 and DNS:localhost, so clients verify the
host name); clients trust the CA's certificate (`kafka-ca.crt`, what NOTIPIPE_KAFKA_CA_FILE points
to elsewhere). The broker reads its key and certificate chain from one PEM file
(`kafka-broker.pem`, Kafka's `ssl.keystore.type=PEM`) and presents the same certificate as a
client on the controller listener, where it is the broker's identity (mutual TLS, CN=broker).
Every file is mode 0600 in a 0700 directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from stack.artifacts import PrerequisiteError
from stack.secrets import secrets_dir
from stack.settings import StackSettings
from streams.connection.kafka import CA_CERT_FILE

CA_DAYS = 3650
BROKER_DAYS = 825
RENEW_BEFORE_DAYS = 30  # a broker certificate closer than this to its end is issued again
BROKER_CN = "broker"  # the broker's principal on the mutual-TLS controller listener
SUBJECT_ALT_NAMES = "IP:127.0.0.1,DNS:localhost"


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    ca_key: Path
    broker_cert: Path
    broker_key: Path
    broker_pem: Path  # key + certificate + CA: the broker's PEM keystore

    @classmethod
    def of(cls, settings: StackSettings) -> TlsFiles:
        directory = secrets_dir(settings)
        return cls(ca_cert=directory / CA_CERT_FILE, ca_key=directory / "kafka-ca.key",
                   broker_cert=directory / "kafka-broker.crt", broker_key=directory / "kafka-broker.key",
                   broker_pem=directory / "kafka-broker.pem")


def openssl() -> str:
    path = shutil.which("openssl")
    if not path:
        raise PrerequisiteError("openssl not found: install it (Debian: apt-get install openssl), "
                                "or run scripts/setup.sh, which does")
    return path


def _run(*args: str) -> None:
    result = subprocess.run([openssl(), *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def valid_for(cert: Path, seconds: int) -> bool:
    """Does the certificate exist and stay valid for at least this long?"""
    if not cert.exists():
        return False
    result = subprocess.run([openssl(), "x509", "-checkend", str(seconds), "-noout", "-in", str(cert)],
                            capture_output=True, text=True)
    return result.returncode == 0


def signed_by(cert: Path, ca_cert: Path) -> bool:
    result = subprocess.run([openssl(), "verify", "-CAfile", str(ca_cert), str(cert)],
                            capture_output=True, text=True)
    return result.returncode == 0


def new_ca(key: Path, cert: Path, subject: str = "/CN=notipipe local stack CA", days: int = CA_DAYS) -> None:
    _run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", str(days), "-subj", subject, "-sha256",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign")


def issue_broker_cert(files: TlsFiles, days: int = BROKER_DAYS) -> None:
    """A new key and certificate for the broker, signed by the CA, with the host names clients use."""
    with tempfile.TemporaryDirectory(dir=files.broker_key.parent) as temp:
        csr, ext = Path(temp) / "broker.csr", Path(temp) / "broker.ext"
        ext.write_text(f"basicConstraints=critical,CA:FALSE\n"
                       f"keyUsage=critical,digitalSignature,keyEncipherment\n"
                       # serverAuth for its listeners; clientAuth for its own connections to the
                       # controller listener (mutual TLS).
                       f"extendedKeyUsage=serverAuth,clientAuth\n"
                       f"subjectAltName={SUBJECT_ALT_NAMES}\n")
        _run("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(files.broker_key),
             "-out", str(csr), "-subj", f"/CN={BROKER_CN}")
        _run("x509", "-req", "-in", str(csr), "-CA", str(files.ca_cert), "-CAkey", str(files.ca_key),
             "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", str(days), "-sha256",
             "-extfile", str(ext), "-out", str(files.broker_cert))
    files.broker_pem.write_text(files.broker_key.read_text() + files.broker_cert.read_text()
                                + files.ca_cert.read_text())


def ensure_certificates(settings: StackSettings) -> list[str]:
    """The CA and the broker's certificate exist, match and stay valid; returns what was made."""
    files = TlsFiles.of(settings)
    made: list[str] = []
    old_umask = os.umask(0o077)  # every file below: owner only
    try:
        if not (files.ca_key.exists() and valid_for(files.ca_cert, RENEW_BEFORE_DAYS * 86400)):
            new_ca(files.ca_key, files.ca_cert)
            made.append(f"created the stack's CA {files.ca_cert}")
        if not (files.broker_pem.exists() and valid_for(files.broker_cert, RENEW_BEFORE_DAYS * 86400)
                and signed_by(files.broker_cert, files.ca_cert)):
            issue_broker_cert(files)
            made.append(f"issued the broker's certificate {files.broker_cert} "
                        f"(SAN {SUBJECT_ALT_NAMES}, valid {BROKER_DAYS} days)")
    finally:
        os.umask(old_umask)
    for path in (files.ca_cert, files.ca_key, files.broker_cert, files.broker_key, files.broker_pem):
        path.chmod(0o600)
    return made
