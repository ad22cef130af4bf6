"""Secrets as files in one directory: `<dir>/<name>`, one secret a line (two while rotating).

The local stack keeps its generated secrets in `.cache/secrets/` (directory 0700, files 0600); a
deployment mounts its own directory (`NOTIPIPE_INBOX_SECRETS_DIR`). Secrets never travel on a
command line or in a log line.
"""

from __future__ import annotations

import os
import secrets as random_source
import tempfile
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


def ensure_secret(directory: Path, name: str) -> str:
    """The first secret of `<directory>/<name>`, generated (mode 0600) on first use."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / name
    if path.exists():
        return read_secrets(directory, name)[0].decode()
    value = random_source.token_urlsafe(32)
    # Written aside, then linked into place: of two processes creating it at once, one wins and
    # the other reads the winner's value, never a half-written file.
    fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{name}.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(value + "\n")
        os.link(temp, path)
    except FileExistsError:
        return read_secrets(directory, name)[0].decode()
    finally:
        os.unlink(temp)
    return value
