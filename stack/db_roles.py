"""Set the passwords of the roles migration V002 creates (the sink's and the inbox readers').

Run by `stack up` / `stack init` after the migrations, every time: the password each role gets is
the one its clients will use (streams/connection/postgres.py), so a changed variable takes effect
on the next run. The server receives a SCRAM verifier made here, never the password itself, so not
even a failing statement could show it in the server's log.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from stack.settings import StackSettings
from streams.connection import postgres


def set_role_passwords(settings: StackSettings) -> list[str]:
    """Returns the roles whose password was set."""
    done = []
    with psycopg.connect(postgres.dsn(settings, postgres.OWNER), autocommit=True) as conn:
        for role in (postgres.SINK, postgres.READER):
            verifier = conn.pgconn.encrypt_password(
                postgres.password(settings, role).encode(), role.name.encode(), b"scram-sha-256")
            conn.execute(sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role.name), sql.Literal(verifier.decode())))
            done.append(role.name)
    return done
