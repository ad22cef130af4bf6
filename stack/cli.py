"""`notipipe stack up | status | down | reset`: the local Kafka stack without Docker."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time

from stack import artifacts
from stack.components import Component, Connect, all_components, describe
from stack.connectors_cli import print_status
from stack.connectors_setup import ConnectorError, connector_status, register_connectors
from stack.migrations import MigrationError, apply_migrations
from stack.process import StartError, stop
from stack.schemas_setup import SchemaRegistrationError, register_schemas
from stack.settings import ConfigError, StackSettings
from stack.topics_setup import ensure_topics


def _line(row: dict[str, str]) -> str:
    return f"{row['name']:<16} {row['state']:<7} {row['address']:<16} log: {row['log']}"


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
        if isinstance(component, Connect) and component.pid() is not None:
            reason = component.restart_reason(changed_parts)
            if reason:
                print(f"restarting connect: {reason}", flush=True)
                stop(component.pid_file, timeout_s=60)
        component.start()
        print(_line(describe(component)), flush=True)
        provision(settings, component.name)
    print(f"stack up in {time.monotonic() - started_at:.1f}s")
    return 0


def provision(settings: StackSettings, component: str) -> None:
    """What each component needs once it runs: tables, topics, schemas, connectors (idempotent)."""
    if component == "postgres":
        # Before Connect: the JDBC sinks write into tables these migrations own.
        for change in apply_migrations(settings):
            print(f"  {change}")
    if component == "kafka":
        for change in ensure_topics(settings):
            print(f"  {change}")
    if component == "registry":
        ids = register_schemas(settings)
        print(f"  {len(ids)} subjects registered: "
              + ", ".join(f"{s}={i}" for s, i in sorted(ids.items())))
    if component == "connect":
        for change in register_connectors(settings):
            print(f"  {change}")


def cmd_init(settings: StackSettings) -> int:
    """Provision servers this stack did not start (docker-compose, a real cluster)."""
    for component in ("postgres", "kafka", "registry", "connect"):
        print(f"{component}: provisioning", flush=True)
        provision(settings, component)
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
    for component in components:
        was_running = stop(component.pid_file, timeout_s=60)
        print(f"{component.name:<14} {'stopped' if was_running else 'not running'}")
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
        "stack", help="run the local Kafka stack (broker, registry, Connect, PostgreSQL, stub)",
        description="Bring the local stack up, check it, take it down. Jars come from Maven "
                    "Central into .cache/dist; data lives in .cache/data. Ports and partitions "
                    "come from NOTIPIPE_* variables (see stack/settings.py).")
    actions = parser.add_subparsers(dest="action", required=True)
    up = actions.add_parser("up", help="resolve jars, build the project's Connect plugins, start "
                                       "everything, apply database migrations, create topics, "
                                       "register schemas and connectors (idempotent)")
    up.add_argument("--only", nargs="+", metavar="NAME",
                    help="start only these components (postgres kafka registry provider-stub connect)")
    up.add_argument("--with-worker", action="store_true",
                    help="also start one router worker (log: .cache/logs/worker.log)")
    actions.add_parser(
        "init", help="provision servers this stack did not start: migrations, topics, schemas, "
                     "connectors (addresses from NOTIPIPE_BOOTSTRAP_SERVERS, NOTIPIPE_REGISTRY_URL, "
                     "NOTIPIPE_CONNECT_URL, NOTIPIPE_POSTGRES_DSN)")
    status = actions.add_parser("status", help="one line per component and connector; exit 1 if any is down")
    status.add_argument("--json", action="store_true", help="machine-readable output")
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
        if args.action == "down":
            return cmd_down(settings)
        return cmd_reset(settings)
    except (ConfigError, artifacts.PrerequisiteError, StartError, SchemaRegistrationError,
            ConnectorError, MigrationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
