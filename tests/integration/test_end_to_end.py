"""The whole product: an event sent with the CLI goes through a worker process and the project's
connectors, and ends as a row in the PostgreSQL inbox and as a request at the provider stub."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

from stack.connectors_setup import apply_connector, connector_status, delete_connector, load_connectors
from stack.settings import StackSettings
from tests.integration.pipeline import PipelineEnv
from tests.waiting import wait_for

ROUTER_ENV = {"NOTIPIPE_DEFAULT_CHANNELS": "in_app,email"}


@pytest.fixture(scope="module")
def connectors(settings: StackSettings, pipeline_env: PipelineEnv) -> Iterator[list[str]]:
    """The project's connector configs, rendered for this module's topics."""
    names = []
    try:
        for name, config in load_connectors(pipeline_env.stack, environ={}):
            names.append(f"{pipeline_env.prefix}{name}")
            apply_connector(settings, names[-1], config)

        def running() -> bool:
            rows = {c["name"]: c for c in connector_status(settings)}
            return all(rows.get(n, {}).get("state") == "RUNNING" and rows[n]["tasks"]
                       and all(t["state"] == "RUNNING" for t in rows[n]["tasks"]) for n in names)
        wait_for(running, 120, "the module's connectors to run")
        yield names
    finally:
        for name in names:
            delete_connector(settings, name)


def _cli(env: PipelineEnv, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", *args], capture_output=True, text=True, timeout=120,
        env={**os.environ, "NOTIPIPE_TOPIC_PREFIX": env.prefix,
             "NOTIPIPE_BOOTSTRAP_SERVERS": env.stack.bootstrap_servers,
             "NOTIPIPE_REGISTRY_URL": env.stack.registry_url})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_event_sent_with_the_cli_reaches_the_inbox_and_the_provider(
        settings: StackSettings, pipeline_env: PipelineEnv, connectors, worker, pg) -> None:
    user = f"e2e-{uuid.uuid4().hex[:8]}"
    before = worker.counter("preferences.stored")
    _cli(pipeline_env, "prefs", "set", "--user", user, "--address", f"email={user}@example.com",
         "--address", "in_app=")
    wait_for(lambda: worker.counter("preferences.stored") == before + 1, 30, "preferences stored")
    event_id = _cli(pipeline_env, "send", "--user", user, "--category", "billing",
                    "--title", "Invoice ready", "--body", "Invoice #7 is ready").strip()

    row = wait_for(lambda: pg.execute(
        "SELECT delivery_id, kind, title, body, event_ids, read_at FROM inbox WHERE user_id = %s",
        (user,)).fetchone(), 120, "the inbox row")
    delivery_id, kind, title, body, event_ids, read_at = row
    assert (kind, title, body, event_ids, read_at) == (
        "SINGLE", "Invoice ready", "Invoice #7 is ready", [event_id], None)

    def stub_requests() -> list[dict]:
        url = f"{settings.stub_url}/requests?channel=email"
        with urllib.request.urlopen(url, timeout=5) as response:
            return [r for r in json.load(response)["requests"]
                    if isinstance(r.get("body"), dict) and r["body"].get("user_id") == user]
    request = wait_for(stub_requests, 120, "the email request at the stub")[0]
    assert request["body"]["address"] == f"{user}@example.com"
    assert request["body"]["event_ids"] == [event_id]
    assert request["headers"].get("Idempotency-Key") == request["body"]["delivery_id"]
    assert wait_for(lambda: pg.execute("SELECT count(*) FROM delivery_log WHERE user_id = %s",
                                       (user,)).fetchone()[0] == 2, 60, "two delivery_log rows")
    assert delivery_id != request["body"]["delivery_id"]  # one delivery per channel
    pg.execute("DELETE FROM inbox WHERE user_id = %s", (user,))
    pg.execute("DELETE FROM delivery_log WHERE user_id = %s", (user,))


def test_a_users_own_fallback_set_with_the_cli_reaches_the_inbox_linked_to_the_first_delivery(
        settings: StackSettings, pipeline_env: PipelineEnv, connectors, worker, pg) -> None:
    """No receipt confirms the e-mail within the user's one second: the in-app copy follows, and
    the delivery log links it to the e-mail (the stub reports no receipts to this pipeline)."""
    user = f"e2e-{uuid.uuid4().hex[:8]}"
    before = worker.counter("preferences.stored")
    _cli(pipeline_env, "prefs", "set", "--user", user, "--address", f"email={user}@example.com",
         "--address", "in_app=", "--fallback", "billing=email>in_app/1")
    wait_for(lambda: worker.counter("preferences.stored") == before + 1, 30, "preferences stored")
    event_id = _cli(pipeline_env, "send", "--user", user, "--category", "billing.invoice",
                    "--title", "Invoice ready", "--body", "Invoice #8 is ready").strip()

    rows = wait_for(lambda: (found := pg.execute(
        "SELECT channel, reason, fallback_of, delivery_id, event_ids FROM delivery_log"
        " WHERE user_id = %s ORDER BY created_at", (user,)).fetchall()) and len(found) == 2 and found,
        120, "the e-mail and its in-app fallback in delivery_log")
    (email, first_reason, first_link, email_id, _), (in_app, reason, link, in_app_id, ids) = rows
    assert (email, first_reason, first_link) == ("EMAIL", "immediate", None)
    assert (in_app, reason, link, ids) == ("IN_APP", "fallback_timeout", email_id, [event_id])
    inbox = wait_for(lambda: pg.execute("SELECT delivery_id, title FROM inbox WHERE user_id = %s",
                                        (user,)).fetchall(), 60, "the inbox row")
    assert inbox == [(in_app_id, "Invoice ready")]
    pg.execute("DELETE FROM inbox WHERE user_id = %s", (user,))
    pg.execute("DELETE FROM delivery_log WHERE user_id = %s", (user,))
