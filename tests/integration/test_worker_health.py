"""A worker that cannot reach the schema registry waits, says so on /health and in `stack status`,
dead-letters nothing, routes the events once the registry is back, and stops within its bound
while it waits. The worker is the stack's own component, started with a home of this test's own
and a registry address where nothing answers (a stand-in for a stopped registry; the chaos suite
stops the real one, tests/integration/test_chaos.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from stack.components import Worker
from stack.kafka_access import stack_access
from stack.process import read_pid, stop
from stack.settings import StackSettings
from tests.integration.pipeline import PipelineEnv, Watcher, free_port
from tests.waiting import wait_for


def _status(environ: dict[str, str]) -> dict[str, dict]:
    result = subprocess.run([sys.executable, "-m", "streams.cli", "stack", "status", "--json"],
                            capture_output=True, text=True, env=environ)
    return {c["name"]: c for c in json.loads(result.stdout)["components"]}


def test_a_worker_without_its_registry_waits_says_so_and_stops_within_its_bound(
        settings: StackSettings, pipeline_env: PipelineEnv, client, watcher: Watcher, tmp_path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    nowhere = free_port()  # nothing listens there
    # Its own home, and the stack's worker credentials (by their files, as a deployment passes them).
    environ = {**stack_access(settings, "worker").environ(),
               "NOTIPIPE_HOME": str(tmp_path), "NOTIPIPE_WEB_PORT": str(free_port()),
               "NOTIPIPE_TOPIC_PREFIX": pipeline_env.prefix,
               "NOTIPIPE_APP_ID": f"{pipeline_env.prefix}router",
               "NOTIPIPE_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
               "NOTIPIPE_REGISTRY_URL": f"http://127.0.0.1:{nowhere}/apis/ccompat/v7",
               "NOTIPIPE_DATA_DIR": str(tmp_path / "worker-data"), "NOTIPIPE_STOP_WAIT_S": "3",
               "NOTIPIPE_TICK_INTERVAL_S": "0.2"}
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    worker = Worker(replace(settings, home=tmp_path))
    worker.start()  # healthy once /health answers (it does: nothing to route yet)
    try:
        user = f"health-{time.time_ns()}"
        event_id = client.send(user_id=user, category="billing", title="t", body="b",
                               channels=["in_app"])
        client.flush()

        def waiting() -> dict | None:
            row = _status(dict(os.environ))["worker"]
            return row if row["state"] == "waiting" else None

        row = wait_for(waiting, 60, "stack status to show the worker waiting")
        assert "schema registry unavailable" in row["detail"] and "waiting for" in row["detail"]
        assert watcher.for_user(user) == [] and watcher.dead_letters == []

        # A stop while the batch waits: bounded by NOTIPIPE_STOP_WAIT_S, not SIGKILLed after 60 s.
        pid = read_pid(worker.pid_file)
        started = time.monotonic()
        assert stop(worker.pid_file, timeout_s=60)
        assert "events still unacknowledged after 3s" in worker.log_file.read_text()
        print(f"stopped in {time.monotonic() - started:.1f}s (pid {pid})")

        # Back with the registry: the event the stopped worker left is routed, nothing lost.
        monkeypatch.setenv("NOTIPIPE_REGISTRY_URL", settings.registry_url)
        worker.start()
        delivered = watcher.wait_for_user(user, 1, timeout_s=120)
        assert [list(d.event_ids) for d in delivered] == [[event_id]]
        assert _status(dict(os.environ))["worker"]["state"] == "up"
        assert watcher.dead_letters == []
    finally:
        stop(worker.pid_file, timeout_s=60)
