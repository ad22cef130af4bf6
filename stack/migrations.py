"""Apply the project's PostgreSQL migrations (connectors/sql/V<n>__<name>.sql) once each, in order.

The tables the JDBC sinks write are owned by these files, not by the connectors: a sink must never
drop or alter a column the app owns (inbox.read_at), and the inbox needs indexes a connector does
not create. Applied versions are recorded in `schema_migrations` with a checksum; editing an
applied file is refused (add a new version instead). Concurrent runs serialise on an advisory lock.

Migrations run while the sinks write (docs/reliability.md, "a database migration"), so:

- each file is its own transaction, recorded with it: a failed file leaves the earlier ones
  applied and itself not at all;
- every statement waits at most `LOCK_TIMEOUT` for its lock, and a file that timed out is tried
  again (`LOCK_ATTEMPTS` times): DDL queued behind a long transaction would otherwise hold up
  every write queued behind it, for as long as that transaction runs;
- a file whose first line is `-- migration: no-transaction` runs statement by statement outside
  a transaction, for what PostgreSQL refuses inside one (`CREATE INDEX CONCURRENTLY`, which builds
  an index without blocking writes). Its statements end with `;` at a line's end and must be safe
  to run again (`IF NOT EXISTS`): a retry, or a crash half-way, runs them again.

Change a table in two steps the running sinks survive: expand (a nullable column, an index built
concurrently; then the connector's column list names the column), and only once every writer
writes it, contract (a constraint added NOT VALID, then validated without blocking writes).
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from stack.settings import PROJECT_ROOT, StackSettings

MIGRATION_DIR = PROJECT_ROOT / "connectors" / "sql"
_NAME = re.compile(r"^V(\d+)__([A-Za-z0-9_]+)\.sql$")
_LOCK_KEY = 0x6E6F7469  # "noti": pg_advisory_lock key shared by every `stack up`
NO_TRANSACTION = "-- migration: no-transaction"
LOCK_TIMEOUT = "5s"
LOCK_ATTEMPTS = 5


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

    @property
    def transactional(self) -> bool:
        return not self.sql.lstrip().startswith(NO_TRANSACTION)

    def statements(self) -> list[str]:
        """The statements of a no-transaction file: each ends with `;` at a line's end."""
        found, current = [], []
        for line in self.sql.splitlines():
            if not current and (not line.strip() or line.lstrip().startswith("--")):
                continue
            current.append(line)
            if line.rstrip().endswith(";"):
                found.append("\n".join(current))
                current = []
        if current:
            raise MigrationError(f"{self.path.name}: its last statement does not end with ';'")
        return found


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


def apply_migrations(settings: StackSettings, directory: Path = MIGRATION_DIR, *,
                     schema: str | None = None, up_to: int | None = None) -> list[str]:
    """Apply what is not applied yet, in order, each file on its own. Returns what was applied
    now. ``schema``: a PostgreSQL schema of the tables other than `public` (created if missing;
    it holds its own `schema_migrations`). ``up_to``: stop after this version."""
    migrations = [m for m in find_migrations(directory) if up_to is None or m.version <= up_to]
    applied_now: list[str] = []
    try:
        conn = psycopg.connect(settings.postgres_dsn, autocommit=True)
    except psycopg.OperationalError as exc:
        raise MigrationError(
            f"PostgreSQL refused the owner role: {str(exc).strip()} (its password: "
            "NOTIPIPE_POSTGRES_PASSWORD, or on the local stack .cache/secrets/postgres-owner-password "
            "as it was when the data dir was made)") from None
    with conn:
        if schema is not None:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())")
            conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
            done = {row[0]: (row[1], row[2]) for row in
                    conn.execute("SELECT version, name, checksum FROM schema_migrations").fetchall()}
            for migration in migrations:
                if migration.version in done:
                    name, checksum = done[migration.version]
                    if checksum != migration.checksum:
                        raise MigrationError(
                            f"{migration.path.name} was changed after it was applied (as "
                            f"V{migration.version}__{name}); never edit an applied migration, add a "
                            "new version instead")
                    continue
                _apply(conn, migration)
                applied_now.append(f"applied migration {migration.path.name}")
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now


def _apply(conn: psycopg.Connection, migration: Migration) -> None:
    record = ("INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
              (migration.version, migration.name, migration.checksum))
    for attempt in range(1, LOCK_ATTEMPTS + 1):
        try:
            if migration.transactional:
                with conn.transaction():
                    conn.execute(migration.sql)
                    conn.execute(*record)
            else:
                for statement in migration.statements():
                    conn.execute(statement)
                conn.execute(*record)
            return
        except psycopg.errors.LockNotAvailable as exc:
            if attempt == LOCK_ATTEMPTS:
                raise MigrationError(
                    f"{migration.path.name} did not get its locks within {LOCK_TIMEOUT}, "
                    f"{LOCK_ATTEMPTS} times: a long transaction holds the table") from exc
            time.sleep(attempt)
        except psycopg.Error as exc:
            raise MigrationError(f"{migration.path.name} failed: {exc}") from exc
