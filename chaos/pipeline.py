"""A pipeline of the run's own on the local stack: its topics (a prefix), its schemas, its
PostgreSQL schema with the project's migrations, its connectors (the project's configs, under
prefixed names), and its worker group. The stack's own pipeline and other runs are left alone;
everything is removed at the end.

It starts as the release before the latest changes, so the rollout scenarios have something to
roll out: the events subject holds NotificationEvent v1 only, and the database is at V004 with
the jdbc-inbox connector writing the columns V004 has. It logs in as the stack's principals do,
with ACLs of its own for its prefix and app id.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from confluent_kafka.admin import AdminClient
from psycopg import sql

from chaos.brokers import Brokers
from chaos.offsets import OffsetReader
from chaos.workers import WorkerProcess, exited, group_stable, wait_until
from stack.acls_setup import ensure_acls, remove_pipeline_acls
from stack.connectors_setup import (
    apply_connector,
    connector_status,
    connector_tasks,
    delete_connector,
    load_connectors,
)
from stack.kafka_access import stack_access
from stack.migrations import apply_migrations
from stack.schemas_setup import register_schemas, registry_client
from stack.settings import StackSettings
from stack.topics_setup import delete_topics_containing, ensure_topics
from streams.contracts.topics import Topics
from streams.core.settings import RouterSettings

# The rules' windows are short so that digests, throttle folds and releases happen within a run.
ROUTER_ENV = {
    "NOTIPIPE_DIGEST_WINDOW_S": "3",
    "NOTIPIPE_THROTTLE_WINDOW_S": "6",
    "NOTIPIPE_THROTTLE_LIMIT": "0",  # off, except the per-user limits of the ledger's profiles
    "NOTIPIPE_DEFAULT_CHANNELS": "in_app",
}
WORKER_ENV = {
    "NOTIPIPE_TICK_INTERVAL_S": "0.5",
    "NOTIPIPE_SESSION_TIMEOUT_S": "6",  # a killed worker's partitions move on after this
    "NOTIPIPE_STOP_WAIT_S": "5",
    "NOTIPIPE_LOG_LEVEL": "warning",
}
FIRST_EVENT_VERSION = 1  # what the events subject holds when the pipeline starts
FIRST_MIGRATION = 4  # the database version it starts at
COLUMNS_AFTER = {5: {"jdbc-inbox": {"reason"}}}  # columns a migration adds to a connector's list


class ChaosPipeline:
    def __init__(self, stack: StackSettings, run: str, work_dir: Path, ports: Callable[[], int],
                 workers: int = 2, partitions: int = 4) -> None:
        self.stack, self.run, self.work_dir = stack, run, work_dir
        self.prefix = f"chaos{run}."
        self.db_schema = f"chaos_{run}"
        self.app_id = f"{self.prefix}router"
        self.partitions = partitions
        self.scoped = dataclasses.replace(stack, topic_prefix=self.prefix, partitions=partitions,
                                          app_id=self.app_id)
        self.topics = Topics(self.prefix)
        self.rules = RouterSettings.from_env(ROUTER_ENV)
        self.connectors: dict[str, str] = {}  # file name -> name registered for this pipeline
        self.env = {"NOTIPIPE_BOOTSTRAP_SERVERS": stack.bootstrap_servers,
                    "NOTIPIPE_REGISTRY_URL": stack.registry_url,
                    "NOTIPIPE_TOPIC_PREFIX": self.prefix, "NOTIPIPE_APP_ID": self.app_id,
                    **ROUTER_ENV, **WORKER_ENV}
        self.workers = [WorkerProcess(f"worker-{n}", self.env, ports(), work_dir / f"worker-{n}",
                                      work_dir / "logs") for n in range(1, workers + 1)]
        self.admin_config = stack_access(stack, "admin").confluent_config()
        self.brokers = Brokers(stack, self.admin_config)

    # -- set up and tear down ----------------------------------------------------------------------
    def setup(self) -> None:
        ensure_acls(self.scoped, echo=lambda _: None)
        ensure_topics(self.scoped, echo=lambda _: None)
        register_schemas(self.scoped, event_version=FIRST_EVENT_VERSION)
        apply_migrations(self.stack, schema=self.db_schema, up_to=FIRST_MIGRATION)
        # The roles' grants are on the tables (V002); the schema they are in must let them in.
        with psycopg.connect(self.stack.postgres_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO notipipe_sink, notipipe_reader")
                         .format(sql.Identifier(self.db_schema)))
        for name, config in self.connector_configs(FIRST_MIGRATION).items():
            self.connectors[name] = f"{self.prefix}{name}"
            apply_connector(self.stack, self.connectors[name], config)
        self.wait_connectors_running()
        for worker in self.workers:
            worker.start()
        self.wait_group_stable()

    def connector_configs(self, migration: int | None = None) -> dict[str, dict[str, str]]:
        """The project's connector configs for this pipeline: its topics, its DLQs, the stub as
        the gateways, its database schema; at ``migration``, the column lists of that database
        version (None: the files' own, the latest)."""
        configs = dict(load_connectors(self.scoped, environ={}))
        for name, config in configs.items():
            if "collection.name.format" in config:
                config["collection.name.format"] = f"{self.db_schema}.{config['collection.name.format']}"
            if migration is not None:
                later = set().union(*(cols.get(name, set()) for version, cols in COLUMNS_AFTER.items()
                                      if version > migration))
                if later:
                    kept = config["transforms.columns.include"].split(",")
                    config["transforms.columns.include"] = ",".join(c for c in kept if c not in later)
        return configs

    def teardown(self) -> None:
        for worker in self.workers:
            with contextlib.suppress(Exception):
                worker.stop(30)
        for name in self.connectors.values():
            with contextlib.suppress(Exception):
                delete_connector(self.stack, name)
        delete_topics_containing(self.stack, self.prefix.rstrip("."))
        groups = [self.app_id, *(f"connect-{n}" for n in self.connectors.values())]
        admin = AdminClient(self.admin_config)  # fresh: the run may have restarted every broker
        for future in admin.delete_consumer_groups(groups).values():
            with contextlib.suppress(Exception):  # a group that never formed is fine
                future.result(30)
        client = registry_client(self.scoped)
        for spec in self.topics.specs():
            if spec.schema_file:
                with contextlib.suppress(Exception):
                    client.delete_subject(f"{spec.name}-value")
        drop = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.db_schema))
        with contextlib.suppress(Exception), psycopg.connect(self.stack.postgres_dsn,
                                                             autocommit=True) as conn:
            conn.execute(drop)
        with contextlib.suppress(Exception):
            remove_pipeline_acls(self.scoped)
        for worker in self.workers:
            shutil.rmtree(worker.data_dir, ignore_errors=True)

    # -- state of the parts ----------------------------------------------------------------------
    def connector_states(self) -> dict[str, tuple[str, list[str]]]:
        """Registered name -> (connector state, task states) of this pipeline's connectors."""
        ours = set(self.connectors.values())
        return {row["name"]: (row["state"], [t["state"] for t in row["tasks"]])
                for row in connector_status(self.stack) if row["name"] in ours}

    def connectors_running(self) -> bool:
        states = self.connector_states()
        return len(states) == len(self.connectors) and all(
            state == "RUNNING" and tasks and all(t == "RUNNING" for t in tasks)
            for state, tasks in states.values())

    def tasks_configured(self, file_name: str, key: str, value: str) -> bool:
        """Every task of the connector runs with ``key`` = ``value`` (a config update restarts
        them asynchronously)."""
        tasks = connector_tasks(self.stack, self.connectors[file_name])
        return bool(tasks) and all(task["config"].get(key) == value for task in tasks)

    def failed_tasks(self) -> list[str]:
        return [name for name, (state, tasks) in self.connector_states().items()
                if state == "FAILED" or "FAILED" in tasks]

    def wait_connectors_running(self, timeout_s: float = 180, restarted: bool = False) -> None:
        """Until every task runs. A failed task ends the wait at once, unless ``restarted``: the
        stack's watchdog restarts one that failed on a lost connection."""
        def failed() -> str | None:
            tasks = [] if restarted else self.failed_tasks()
            return f"failed: {', '.join(tasks)}" if tasks else None

        wait_until(self.connectors_running, timeout_s, "the pipeline's connectors to run",
                   failed=failed)

    def wait_group_stable(self, timeout_s: float = 180) -> None:
        wait_until(lambda: group_stable(self.workers, self.partitions), timeout_s,
                   "every partition owned by one healthy worker", failed=lambda: exited(self.workers))

    # -- offsets -------------------------------------------------------------------------------
    def offsets(self) -> OffsetReader:
        """Clients for one reading of offsets (chaos/offsets.py); close it, or use ``with``."""
        return OffsetReader(self.admin_config, f"{self.prefix}chaos-offsets")

    def lags(self) -> dict[str, int]:
        """Records not yet processed: the router's events, and each connector's topics."""
        configs = self.connector_configs()
        with self.offsets() as reader:
            out = {"router": reader.lag(self.app_id, [self.topics.events])}
            for name, registered in self.connectors.items():
                out[name] = reader.lag(f"connect-{registered}", configs[name]["topics"].split(","))
        return out

    def preferences_routed(self) -> bool:
        """The worker group has committed the whole preferences topic: every snapshot stored."""
        with self.offsets() as reader:
            return reader.lag(self.app_id, [self.topics.preferences]) == 0

    def wait(self, seconds: float) -> None:
        """Sleep, failing at once if a worker meant to run exits."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            reason = exited(self.workers)
            if reason:
                raise RuntimeError(reason)
            time.sleep(min(0.5, left))
