"""Apply the project's PostgreSQL migrations (connectors/sql/V<n>__<name>.sql) once each, in order.

The tables the JDBC sinks write are owned by these files, not by the connectors: a sink must never
drop or alter a column the app owns (inbox.read_at), and the inbox needs indexes a connector does
not create. Applied versions are recorded in `schema_migrations` with a checksum; editing an
applied file is refused (add a new version instead). Concurrent runs serialise on an advisory lock.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from stack.settings import PROJECT_ROOT, StackSettings

MIGRATION_DIR = PROJECT_ROOT / "connectors" / "sql"
_NAME = re.compile(r"^V(\d+)__([A-Za-z0-9_]+)\.sql$")
_LOCK_KEY = 0x6E6F7469  # "noti": pg_advisory_xact_lock key shared by every `stack up`


class MigrationError(RuntimeError):
    """A migration file is malformed, was edited after it was applied, or failed to run."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def find_migrations(directory: Path = MIGRATION_DIR) -> list[Migration]:
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path}: migration files are named V<number>__<name>.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"{path} and {found[version].path} share version {version}")
        found[version] = Migration(version, match.group(2), path)
    return [found[v] for v in sorted(found)]


def apply_migrations(settings: StackSettings, directory: Path = MIGRATION_DIR) -> list[str]:
    """Apply what is not applied yet, all in one transaction. Returns what was applied now."""
    migrations = find_migrations(directory)
    applied_now: list[str] = []
    try:
        conn = psycopg.connect(settings.postgres_dsn)
    except psycopg.OperationalError as exc:
        raise MigrationError(
            f"PostgreSQL refused the owner role: {str(exc).strip()} (its password: "
            "NOTIPIPE_POSTGRES_PASSWORD, or on the local stack .cache/secrets/postgres-owner-password "
            "as it was when the data dir was made)") from None
    with conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())")
        done = {row[0]: (row[1], row[2]) for row in
                conn.execute("SELECT version, name, checksum FROM schema_migrations").fetchall()}
        for migration in migrations:
            if migration.version in done:
                name, checksum = done[migration.version]
                if checksum != migration.checksum:
                    raise MigrationError(
                        f"{migration.path.name} was changed after it was applied (as V{migration.version}"
                        f"__{name}); never edit an applied migration, add a new version instead")
                continue
            try:
                conn.execute(migration.sql)
            except psycopg.Error as exc:
                raise MigrationError(f"{migration.path.name} failed: {exc}") from exc
            conn.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                         (migration.version, migration.name, migration.checksum))
            applied_now.append(f"applied migration {migration.path.name}")
    return applied_now
