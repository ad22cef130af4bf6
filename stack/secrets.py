"""The local stack's secrets: generated per stack into the gitignored cache, never committed or printed.

Each secret is one file in `.cache/secrets/` (the directory 0700, the files 0600), created with a
random value on first use and read back afterwards, so every part of the stack that needs it (a
server's config, a client of the same machine) finds the same value.
"""

from __future__ import annotations

import os
import secrets as random_source
import tempfile
from pathlib import Path

from stack.settings import StackSettings


def secrets_dir(settings: StackSettings) -> Path:
    """`<cache>/secrets`, created with mode 0700."""
    path = settings.cache_dir / "secrets"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def secret(settings: StackSettings, name: str) -> str:
    """The secret `name`: read from `<secrets_dir>/<name>`, or generated there (mode 0600) on first use."""
    path = secrets_dir(settings) / name
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    value = random_source.token_urlsafe(24)
    # Written aside, then linked into place: of two processes creating it at once, one wins and
    # the other reads the winner's value, never a half-written file.
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{name}.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(value + "\n")
        os.link(temp, path)
    except FileExistsError:
        return path.read_text().strip()
    finally:
        os.unlink(temp)
    return value
