"""`notipipe stack up | status | down | reset`: the local Kafka stack without Docker."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from stack import artifacts, secret_files
from stack.acls_setup import ROLES, ensure_acls, ensure_users
from stack.components import Component, Kafka, all_components, describe
from stack.connectors_cli import print_status
from stack.connectors_setup import ConnectorError, connector_status, register_connectors
from stack.db_roles import set_role_passwords
from stack.kafka_access import stack_access, write_private
from stack.migrations import MigrationError, apply_migrations
from stack.process import StartError, stop, stop_together
from stack.schemas_setup import SchemaRegistrationError, register_schemas
from stack.secrets import secrets_dir
from stack.settings import ConfigError, StackSettings
from stack.topics_setup import ensure_registry_topics, ensure_topics
from streams.connection.http import connect_is_local
from streams.connection.kafka import KafkaAccessError, KafkaConfigError


def _line(row: dict[str, str]) -> str:
    return f"{row['name']:<17} {row['state']:<7} {row['address']:<16} log: {row['log']}"


def cmd_up(settings: StackSettings, only: list[str] | None = None, with_worker: bool = False) -> int:
    # One `stack up` at a time (test sessions run it concurrently): a second one waits, then finds
    # everything up. Otherwise one could restart Connect while the other waits for it to be healthy.
    with artifacts.file_lock(settings.run_dir / "up.lock"):
        return _up(settings, only, with_worker)


def _up(settings: StackSettings, only: list[str] | None, with_worker: bool = False) -> int:
    started_at = time.monotonic()
    changed_parts = artifacts.resolve_all(settings)
    for component in all_components(settings, with_worker=with_worker):
        if only and component.name not in only:
            continue
        if component.pid() is not None:
            reason = component.restart_reason(changed_parts)
            if reason:
                print(f"restarting {component.name}: {reason}", flush=True)
                stop(component.pid_file, timeout_s=60)
        component.start()
        print(_line(describe(component)), flush=True)
        provision(settings, component.name)
        if isinstance(component, Kafka) and (note := component.monitoring_note()):
            print(f"  {note}", flush=True)
    if settings.monitoring and (not only or "dashboard" in only):
        print(f"dashboard: {settings.dashboard_url}  (Prometheus {settings.prometheus_url}, "
              f"Alertmanager {settings.alertmanager_url})")
    print(f"stack up in {time.monotonic() - started_at:.1f}s")
    return 0


def provision(settings: StackSettings, component: str) -> None:
    """What each component needs once it runs: tables, topics, schemas, connectors (idempotent)."""
    if component == "postgres":
        # Before Connect: the JDBC sinks write into tables these migrations own.
        for change in apply_migrations(settings):
            print(f"  {change}")
        set_role_passwords(settings)
    if component == "kafka":
        # Users first (ACLs name them), then their ACLs, then the topics (the registry's too,
        # before it starts).
        for change in [*ensure_users(settings), *ensure_acls(settings), *ensure_topics(settings),
                       *ensure_registry_topics(settings)]:
            print(f"  {change}")
    if component == "registry":
        ids = register_schemas(settings)
        print(f"  {len(ids)} subjects registered: "
              + ", ".join(f"{s}={i}" for s, i in sorted(ids.items())))
    if component == "connect":
        if connect_is_local(settings):
            # What the connectors' ${file:...} references read, current before they (re)start.
            secret_files.connector_secrets(settings)
        for change in register_connectors(settings):
            print(f"  {change}")


def cmd_init(settings: StackSettings) -> int:
    """Provision servers this stack did not start (docker-compose, a real cluster)."""
    for component in ("postgres", "kafka", "registry", "connect"):
        print(f"{component}: provisioning", flush=True)
        provision(settings, component)
    return 0


def cmd_secrets(settings: StackSettings) -> int:
    """Generate what is missing; print where each file is (never a value)."""
    for path in secret_files.write_all(settings):
        print(path)
    return 0


def write_client_config(settings: StackSettings, role: str) -> Path:
    """A client.properties for Kafka's own tools (`--command-config`), logging in as `role`;
    only its owner reads it."""
    access = stack_access(settings, role)
    path = secrets_dir(settings) / f"client-{role}.properties"
    write_private(path, "\n".join([f"bootstrap.servers={access.bootstrap_servers}",
                                   *access.java_properties(), ""]))
    return path


def cmd_client_config(settings: StackSettings, role: str) -> int:
    """A client.properties for Kafka's own tools (`--command-config`), logging in as `role`."""
    access = stack_access(settings, role)
    path = write_client_config(settings, role)
    print(path)
    print(f"# e.g. java -cp '{settings.dist_dir / 'kafka' / 'libs'}/*' "
          f"org.apache.kafka.tools.ConsumerGroupCommand --bootstrap-server {access.bootstrap_servers} "
          f"--command-config {path} --list", file=sys.stderr)
    return 0


def cmd_rotate(settings: StackSettings, role: str, restart: bool) -> int:
    from stack.rotation import RotationError, rotate_password

    try:
        with artifacts.file_lock(settings.run_dir / "up.lock"):  # not while `stack up` provisions
            rotate_password(settings, role, restart=restart)
    except RotationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_status(settings: StackSettings, as_json: bool) -> int:
    rows = [describe(c) for c in all_components(settings)]
    connectors: list[dict] = []
    connect_up = any(r["name"] == "connect" and r["state"] == "up" for r in rows)
    if connect_up:
        connectors = connector_status(settings)
    if as_json:
        print(json.dumps({"components": rows, "connectors": connectors}, indent=2))
    else:
        for row in rows:
            print(_line(row))
            if row.get("detail"):
                print(f"  {row['detail']}")
        if connect_up:
            print_status(connectors)
    return 0 if all(r["state"] == "up" for r in rows) else 1


def cmd_down(settings: StackSettings) -> int:
    # Reverse start order: Connect and the registry leave Kafka cleanly before it stops.
    components: list[Component] = list(reversed(all_components(settings)))
    brokers = [c for c in components if isinstance(c, Kafka)]
    for component in components:
        if isinstance(component, Kafka):
            if component is brokers[0]:
                # Every node at once: the quorum's last node, stopped alone, would wait for a
                # controller to approve its shutdown until killed.
                stopped = stop_together([b.pid_file for b in brokers], timeout_s=60)
                for broker, was_running in zip(brokers, stopped, strict=True):
                    broker.stopped()
                    print(f"{broker.name:<17} {'stopped' if was_running else 'not running'}")
            continue
        was_running = stop(component.pid_file, timeout_s=60)
        component.stopped()
        print(f"{component.name:<17} {'stopped' if was_running else 'not running'}")
    return 0


def cmd_reset(settings: StackSettings) -> int:
    cmd_down(settings)
    for path in (settings.data_dir, settings.run_dir, settings.log_dir):
        shutil.rmtree(path, ignore_errors=True)
    print(f"wiped {settings.data_dir}, {settings.run_dir} and {settings.log_dir} "
          f"(resolved jars in {settings.dist_dir} kept)")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "stack", help="run the local Kafka stack (broker, registry, Connect, PostgreSQL, inbox, stub, "
                      "monitoring)",
        description="Bring the local stack up, check it, take it down. Jars come from Maven "
                    "Central into .cache/dist; data lives in .cache/data. Monitoring (Prometheus, "
                    "Alertmanager, the lag exporter, JMX agents, the PostgreSQL exporter and the "
                    "dashboard) comes up with it unless NOTIPIPE_MONITORING=0. Ports and partitions "
                    "come from NOTIPIPE_* variables (see stack/settings.py).")
    actions = parser.add_subparsers(dest="action", required=True)
    up = actions.add_parser("up", help="resolve jars, build the project's Connect plugins, start "
                                       "everything, apply database migrations, create topics, "
                                       "register schemas and connectors (idempotent)")
    up.add_argument("--only", nargs="+", metavar="NAME",
                    help="start only these components (postgres kafka registry inbox provider-stub "
                         "connect connect-watchdog lag-exporter postgres-exporter alertmanager "
                         "prometheus dashboard)")
    up.add_argument("--with-worker", action="store_true",
                    help="also start one router worker (log: .cache/logs/worker.log)")
    actions.add_parser(
        "init", help="provision servers this stack did not start: migrations, topics, schemas, "
                     "connectors (addresses from NOTIPIPE_BOOTSTRAP_SERVERS, NOTIPIPE_REGISTRY_URL, "
                     "NOTIPIPE_CONNECT_URL, NOTIPIPE_POSTGRES_DSN)")
    actions.add_parser(
        "secrets", help="generate the stack's secrets and the files its servers read them from into "
                        ".cache/secrets (stack up does it too; docker-compose.yml runs it first); "
                        "prints the file names, never a value")
    status = actions.add_parser("status", help="one line per component and connector; exit 1 if any is down")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    roles = [*ROLES, "admin"]
    client_config = actions.add_parser(
        "client-config", help="write a client.properties for Kafka's own tools (--command-config) "
                              "that logs in as a role; prints its path (the file holds the password)",
        description="Write .cache/secrets/client-<role>.properties (mode 0600): the servers, TLS "
                    "and SCRAM login of a role, for Kafka's tools' --command-config. Prints its "
                    "path, and an example command on stderr. Roles and their rights: "
                    "docs/security.md.")
    client_config.add_argument("--role", default="admin", choices=roles, help="default: admin")
    rotate = actions.add_parser(
        "rotate-password", help="give a Kafka user a new password without downtime: set it on the "
                                "broker, save it for new processes, restart the stack's processes "
                                "of that role one at a time (docs/security.md)",
        description="Rotate a Kafka user's SCRAM password with no downtime: the new password is "
                    "set on the broker and saved in .cache/secrets/ for processes started from now "
                    "on; processes already running keep their open connections. The stack's own "
                    "process of the role (Connect, the registry, the quickstart's worker) is "
                    "restarted; restart the others (more workers, services) one at a time.")
    rotate.add_argument("--role", required=True, choices=roles)
    rotate.add_argument("--no-restart", action="store_true",
                        help="do not restart the stack's processes of the role; restart them yourself")
    actions.add_parser("down", help="stop everything this stack started; data is kept")
    actions.add_parser("reset", help="stop everything and wipe data, logs and run files")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        settings = StackSettings.from_env()
        if args.action == "up":
            return cmd_up(settings, args.only, args.with_worker)
        if args.action == "init":
            return cmd_init(settings)
        if args.action == "status":
            return cmd_status(settings, args.json)
        if args.action == "secrets":
            return cmd_secrets(settings)
        if args.action == "down":
            return cmd_down(settings)
        if args.action == "client-config":
            return cmd_client_config(settings, args.role)
        if args.action == "rotate-password":
            return cmd_rotate(settings, args.role, restart=not args.no_restart)
        return cmd_reset(settings)
    except (ConfigError, artifacts.PrerequisiteError, StartError, SchemaRegistrationError,
            ConnectorError, MigrationError, KafkaConfigError, KafkaAccessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
