"""PostgreSQL roles and how each one connects (password authentication, scram-sha-256).

- `notipipe`, the owner (NOTIPIPE_POSTGRES_PASSWORD; local: `.cache/secrets/postgres-owner-password`):
  owns the tables, runs the migrations, sets the other roles' passwords.
- `notipipe_sink` (NOTIPIPE_POSTGRES_SINK_PASSWORD; local: `postgres-sink-password`): the JDBC sinks;
  SELECT on `inbox` and `delivery_log`, INSERT and UPDATE of the columns they write. No DDL.
- `notipipe_reader` (NOTIPIPE_POSTGRES_READER_PASSWORD; local: `postgres-reader-password`): an inbox
  service; SELECT on `inbox`, UPDATE of `inbox.read_at` only.

NOTIPIPE_POSTGRES_DSN (libpq form) points the owner at a server the stack did not start; the other
roles then use the same address with their own user and password, and their variables are required.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from psycopg.conninfo import make_conninfo

from stack.settings import StackSettings
from streams.connection.credentials import Credential, resolve


@dataclass(frozen=True)
class Role:
    name: str
    password: Credential


OWNER = Role("notipipe", Credential("NOTIPIPE_POSTGRES_PASSWORD", "postgres-owner-password",
                                    "connecting to PostgreSQL as the owner role"))
SINK = Role("notipipe_sink", Credential("NOTIPIPE_POSTGRES_SINK_PASSWORD", "postgres-sink-password",
                                        "the JDBC sinks' PostgreSQL role"))
READER = Role("notipipe_reader", Credential("NOTIPIPE_POSTGRES_READER_PASSWORD",
                                            "postgres-reader-password",
                                            "the inbox readers' PostgreSQL role"))
ROLES = (OWNER, SINK, READER)


def is_local(settings: StackSettings) -> bool:
    return not settings.postgres_dsn_override


def password(settings: StackSettings, role: Role, environ: Mapping[str, str] = os.environ) -> str:
    return resolve(role.password, settings, is_local(settings), environ)


def dsn(settings: StackSettings, role: Role = OWNER, environ: Mapping[str, str] = os.environ) -> str:
    """libpq connection string of `role`."""
    if not is_local(settings):
        if role is OWNER:
            return settings.postgres_dsn_override
        return make_conninfo(settings.postgres_dsn_override, user=role.name,
                             password=password(settings, role, environ))
    return make_conninfo(host="127.0.0.1", port=str(settings.postgres_port), dbname="notipipe",
                         user=role.name, password=password(settings, role, environ))
