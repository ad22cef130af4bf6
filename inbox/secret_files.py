"""Secrets as files in one directory: `<dir>/<name>`, one secret a line (two while rotating).

The local stack keeps its generated secrets in `.cache/secrets/` (directory 0700, files 0600); a
deployment mounts its own directory (`NOTIPIPE_INBOX_SECRETS_DIR`). Secrets never travel on a
command line or in a log line.
"""

from __future__ import annotations

from pathlib import Path

TOKEN_SECRET = "inbox-token"


def gateway_secret_name(gateway: str) -> str:
    """The file holding a gateway's receipt-signing secret."""
    return f"receipts-{gateway}"


class SecretMissing(RuntimeError):
    """A secret file is absent or empty; the message says which file and how to make it."""


def read_secrets(directory: Path, name: str) -> list[bytes]:
    """Every secret of `<directory>/<name>` (blank lines and `#` comments ignored)."""
    path = directory / name
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise SecretMissing(f"no secret file {path}: `notipipe stack up` makes the local stack's; "
                            "elsewhere write one random line of at least 32 characters there "
                            "(mode 0600)") from None
    found = [line.strip().encode() for line in lines if line.strip() and not line.startswith("#")]
    if not found:
        raise SecretMissing(f"secret file {path} is empty")
    return found
