"""Rotating a Kafka user's SCRAM password without downtime.

A SCRAM user has one password per mechanism, and the broker checks it only when a connection
logs in: connections already open stay open when it changes (the broker does not re-authenticate
sessions, `connections.max.reauth.ms` is unset). So a rotation is:

1. generate the new password and save it aside (`<secret>.new`, 0600), so a rotation cut short is
   finished by the next `stack up` instead of leaving the broker and the file apart;
2. set it on the broker (admin API); running processes keep working on their open connections;
3. move it into place: every process started from now on reads the new one;
4. restart the processes of that role one at a time, each picking it up as it starts: the stack's
   own (Connect for `connect`, the registry for `registry`, the quickstart's worker for
   `worker`) are restarted here; other processes of the role (more workers, services using the
   SDK) are restarted by whoever runs them, one after another, so their group always has members.

A process that opens a *new* connection between steps 2 and 4 (a broker it had not talked to
yet, a reconnect after a network error) is refused until it restarts: keep that window short.
"""

from __future__ import annotations

import os
import secrets as random_source
from collections.abc import Callable

from stack.acls_setup import ROLES, set_password
from stack.components import Component, Connect, Registry, Worker
from stack.process import stop
from stack.secrets import secrets_dir
from stack.settings import StackSettings
from streams.connection.kafka import password_secret_name

ROTATABLE = (*ROLES, "admin")


class RotationError(RuntimeError):
    """The role cannot be rotated this way; the message says why."""


def _services(settings: StackSettings, role: str) -> list[Component]:
    """The stack's own long-running processes that log in as `role`."""
    services: dict[str, list[Component]] = {"connect": [Connect(settings)],
                                            "registry": [Registry(settings)],
                                            "worker": [Worker(settings)]}
    return services.get(role, [])


def rotate_password(settings: StackSettings, role: str, restart: bool = True,
                    echo: Callable[[str], None] = print) -> None:
    if role not in ROTATABLE:
        raise RotationError(
            f"cannot rotate {role!r}: choose one of {', '.join(ROTATABLE)} (the broker's own "
            "password is in every broker's config; changing it means restarting each broker)")
    current = secrets_dir(settings) / password_secret_name(role)
    pending = current.with_name(current.name + ".new")
    if not current.exists():
        raise RotationError(f"{role} has no password yet ({current}): run `notipipe stack up` first")
    fd = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(random_source.token_urlsafe(24) + "\n")
    set_password(settings, role, pending.read_text().strip())
    os.replace(pending, current)
    echo(f"the broker has the new password of {role}; new processes read it from {current}")
    running = [c for c in _services(settings, role) if c.pid() is not None]
    for component in running:
        if not restart:
            echo(f"  {component.name} still runs with the old password: restart it")
            continue
        echo(f"  restarting {component.name} ...")
        stop(component.pid_file, timeout_s=60)
        component.start()
        echo(f"  {component.name} runs with the new password")
    echo(f"restart every other process that logs in as {role}, one at a time; the ones running "
         "keep their open connections until then")
