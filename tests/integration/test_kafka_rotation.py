"""Rotating SCRAM passwords: the worker's under a flow of events, with no downtime and no loss;
Connect's, which the command restarts itself.

`notipipe stack rotate-password --role worker` sets a new password on the broker and saves it for
new processes; the running worker keeps its open connections, then is restarted and logs in with
the new one. Events keep flowing throughout; every one arrives as a delivery. The broker's log
shows no operation of the worker denied: its ACLs cover everything it does, restart included.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from stack.components import Connect
from stack.connectors_setup import connector_status, load_connectors
from stack.kafka_access import stack_access
from stack.secrets import secrets_dir
from stack.settings import StackSettings
from streams.client.sdk import NotificationClient
from streams.connection.kafka import ACCESS_VARIABLES, KafkaAccessError, password_secret_name
from tests.integration.pipeline import PipelineEnv, Watcher, WorkerProcess, wait_until_routing
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
ROUTER_ENV = {"NOTIPIPE_DEFAULT_CHANNELS": "in_app", "NOTIPIPE_THROTTLE_LIMIT": "0"}


class EventFlow(threading.Thread):
    """Sends one billing event (delivered at once, in-app) every 50 ms until stopped."""

    def __init__(self, client: NotificationClient) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.sent: list[str] = []
        self.users = [f"rot-{uuid.uuid4().hex[:6]}-{i}" for i in range(8)]
        self._halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                user = self.users[len(self.sent) % len(self.users)]
                self.sent.append(self.client.send(user_id=user, category="billing", title="t", body="b"))
                self.client.producer.poll(0)
                time.sleep(0.05)
            self.client.flush()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def stop(self) -> None:
        self._halt.set()
        self.join(60)


def _denied(log: Path, start: int, principal: str) -> list[str]:
    with log.open("rb") as text:
        text.seek(start)
        return [line for line in text.read().decode(errors="replace").splitlines()
                if f"Principal = User:{principal} is Denied" in line]


def test_rotating_the_workers_password_under_load_loses_nothing(
        settings: StackSettings, pipeline_env: PipelineEnv, client: NotificationClient,
        watcher: Watcher, worker: WorkerProcess) -> None:
    broker_log = settings.log_dir / "kafka.log"
    log_start = broker_log.stat().st_size
    secret = secrets_dir(settings) / password_secret_name("worker")
    old = stack_access(settings, "worker")
    flow = EventFlow(NotificationClient(pipeline_env.client_settings))
    flow.start()
    try:
        wait_for(lambda: len(flow.sent) >= 40, 30, "events flowing")
        before = secret.read_text()
        rotated = subprocess.run(
            [sys.executable, "-m", "streams.cli", "stack", "rotate-password", "--role", "worker"],
            capture_output=True, text=True, timeout=120, cwd=ROOT,
            env={k: v for k, v in os.environ.items() if k not in ACCESS_VARIABLES})
        assert rotated.returncode == 0, rotated.stderr
        assert secret.read_text() != before
        assert before.strip() not in rotated.stdout + rotated.stderr  # never printed
        # The old password is refused now; the running worker goes on with its open sessions.
        with pytest.raises(KafkaAccessError, match="refused user 'worker'"):
            dataclasses.replace(old, password=before.strip()).verify(timeout_s=15)
        routed = worker.counters().get("events.routed", 0)
        wait_for(lambda: worker.counters().get("events.routed", 0) > routed + 20, 60,
                 "the worker routing on with its open connections")
        # Its restart (one worker at a time) logs in with the new password.
        worker.stop()
        worker.start()
        wait_until_routing(worker, client, watcher)
        sent = len(flow.sent)
        wait_for(lambda: len(flow.sent) >= sent + 40, 30, "more events after the restart")
    finally:
        flow.stop()
    assert flow.error is None, flow.error
    assert len(flow.sent) == len(set(flow.sent))

    def arrived() -> set[str]:
        return {event_id for user in flow.users for d in watcher.for_user(user) for event_id in d.event_ids}
    wait_for(lambda: set(flow.sent) <= arrived(), 120, f"each of the {len(flow.sent)} events as a delivery")
    assert _denied(broker_log, log_start, "worker") == []


def test_rotating_connects_password_restarts_connect_which_logs_in_with_it(settings: StackSettings) -> None:
    """The stack's own process of the role is restarted by the command and runs on."""
    broker_log = settings.log_dir / "kafka.log"
    log_start = broker_log.stat().st_size
    secret = secrets_dir(settings) / password_secret_name("connect")
    before = secret.read_text().strip()
    old_pid = Connect(settings).pid()
    rotated = subprocess.run(
        [sys.executable, "-m", "streams.cli", "stack", "rotate-password", "--role", "connect"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k not in ACCESS_VARIABLES})
    assert rotated.returncode == 0, rotated.stderr
    assert "connect runs with the new password" in rotated.stdout
    assert Connect(settings).pid() not in (None, old_pid)
    with pytest.raises(KafkaAccessError, match="refused user 'connect'"):
        dataclasses.replace(stack_access(settings, "connect"), password=before).verify(timeout_s=15)

    def all_running() -> bool:
        rows = connector_status(settings)
        return bool(rows) and all(r["state"] == "RUNNING" and r["tasks"]
                                  and all(t["state"] == "RUNNING" for t in r["tasks"]) for r in rows)
    wait_for(all_running, 120, "every connector and task running again")
    # The sinks' consumers are in their groups again: they logged in with the new password (the
    # old process, and its sessions, are gone).
    admin = AdminClient(stack_access(settings, "admin").confluent_config())
    groups = [f"connect-{name}" for name, _ in load_connectors(settings)]

    def members() -> bool:
        described = admin.describe_consumer_groups(groups)
        return all(future.result(30).members for future in described.values())
    wait_for(members, 120, f"members in {groups}")
    assert _denied(broker_log, log_start, "connect") == []
