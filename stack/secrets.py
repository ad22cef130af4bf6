"""Secrets of the local stack: generated on first use, kept in `.cache/secrets/`, never committed.

Each secret is one file (mode 0600) in a folder only the stack's user can enter (0700). A stack
that is reset keeps them; deleting the folder makes `stack up` generate new ones (a stack with data
from before then needs `notipipe stack reset`).
"""

from __future__ import annotations

import contextlib
import os
import secrets as _random
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stack.settings import StackSettings


def secrets_dir(settings: StackSettings) -> Path:
    """`<cache>/secrets`, created with mode 0700."""
    path = settings.cache_dir / "secrets"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def secret(settings: StackSettings, name: str) -> str:
    """The stack's secret called `name`, generated into its file on first use."""
    return secret_in(secrets_dir(settings), name)


def secret_in(directory: Path, name: str) -> str:
    """The secret `<directory>/<name>`, generated (URL-safe, 24 random bytes) on first use.

    Two processes asking at once get the same value: the file appears complete or not at all."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"not a secret name: {name!r}")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / name
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    value = _random.token_urlsafe(24)
    partial = path.with_name(f".{name}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")
    try:
        os.link(partial, path)  # fails if another process got there first: theirs wins
    except FileExistsError:
        value = path.read_text().strip()
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return value
