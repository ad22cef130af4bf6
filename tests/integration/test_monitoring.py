"""Monitoring on the real stack: a worker under a steady load, watched by the project's Prometheus,
Alertmanager, lag exporter and dashboard (short intervals and thresholds, given as settings).

- The dashboard, in headless Chromium, draws lag and rates that agree with Prometheus' API.
- A worker stopped with SIGSTOP makes the stalled (or lag) alert fire in Alertmanager, and
  SIGCONT resolves it.
- A gateway that rejects every request fires the sink-DLQ and gateway alerts.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from stack.connectors_setup import apply_connector, connector_status, delete_connector, load_connectors
from stack.settings import StackSettings
from stack.topics_setup import delete_topics_containing
from streams.client.sdk import NotificationClient, now_ms
from streams.core.model import Channel, ChannelPreference, Preferences
from tests.integration.monitoring_harness import Monitor, make_monitor
from tests.integration.pipeline import (
    PipelineEnv,
    Watcher,
    WorkerProcess,
    make_pipeline_env,
    wait_until_routing,
)
from tests.waiting import wait_for

RUN = uuid.uuid4().hex[:8]
ARTIFACTS = "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class Load:
    """Events sent continuously to the pipeline until stopped: by default about 25 a second,
    in-app only, for 40 users."""

    def __init__(self, client: NotificationClient, user: str | None = None, category: str = "social.comment",
                 channels: tuple[str, ...] | None = ("in_app",), per_second: float = 25,
                 priority: str = "NORMAL") -> None:
        self.client, self.sent = client, 0
        self.user, self.category, self.channels, self.priority = user, category, channels, priority
        self.batch = max(1, round(per_second / 5))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for _ in range(self.batch):
                user = self.user or f"load-{RUN}-{self.sent % 40}"
                self.client.send(user_id=user, category=self.category, title=f"load {self.sent}",
                                 body="steady", channels=self.channels, priority=self.priority)
                self.sent += 1
            self.client.flush()
            self._stop.wait(0.2)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


@pytest.fixture(scope="module")
def env(settings: StackSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PipelineEnv]:
    home = tmp_path_factory.mktemp("monitor")
    # The pipeline's settings carry the monitor's home: its workers are listed where the monitor's
    # Prometheus looks for them.
    own = make_monitor(settings, home).stack
    (home / "pipeline").mkdir()
    pipeline = make_pipeline_env(own, home / "pipeline", {})
    yield pipeline
    delete_topics_containing(settings, pipeline.prefix.rstrip("."))


@pytest.fixture(scope="module")
def monitor(env: PipelineEnv) -> Iterator[Monitor]:
    monitor = make_monitor(
        env.stack, env.stack.home, env.prefix, scrape_interval_s=1, evaluation_interval_s=1,
        lag_poll_interval_s=1, window_s=5, for_s=3, fast_for_s=2, lag_seconds=3.0, exporter_stale_s=10)
    try:
        monitor.start()
        yield monitor
    finally:
        monitor.stop()


@pytest.fixture(scope="module")
def client(env: PipelineEnv) -> NotificationClient:
    return NotificationClient(env.client_settings)


@pytest.fixture(scope="module")
def worker(env: PipelineEnv, client: NotificationClient, monitor: Monitor) -> Iterator[WorkerProcess]:
    watcher = Watcher(env)
    process = WorkerProcess(env)
    process.start()
    try:
        wait_until_routing(process, client, watcher)
        yield process
    finally:
        watcher.close()
        process.stop()


def _group(env: PipelineEnv) -> str:
    return f"{env.prefix}router"


def _firing(monitor: Monitor, names: set[str], **labels: str) -> list[dict[str, Any]]:
    return [a for a in monitor.alertmanager_alerts()
            if a["labels"]["alertname"] in names and all(a["labels"].get(k) == v for k, v in labels.items())]


def _wait_until_lag_is_scraped(monitor: Monitor, env: PipelineEnv) -> None:
    wait_for(lambda: monitor.query(f'kafka_consumergroup_group_lag{{group="{_group(env)}",'
                                   f'topic="{env.prefix}notifications.events"}}'),
             120, f"Prometheus to have the lag of {_group(env)}: {monitor.log_tails()}")
    wait_for(lambda: monitor.query(f'up{{job="workers",app_id="{_group(env)}"}} == 1'), 60,
             "the worker's target to be up")


def _legend(legend: str, labels: dict[str, str]) -> str:
    name = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), legend)
    return re.sub(r"\s+", " ", name).strip()


def test_the_dashboard_draws_lag_and_rates_that_agree_with_prometheus(
        monitor: Monitor, env: PipelineEnv, worker: WorkerProcess, client: NotificationClient,
        settings: StackSettings) -> None:
    from playwright.sync_api import sync_playwright

    config = json.load(urllib.request.urlopen(f"{monitor.stack.dashboard_url}/api/panels", timeout=10))
    panels = {p["id"]: p for p in config["panels"]}
    with Load(client) as load, sync_playwright() as playwright:
        _wait_until_lag_is_scraped(monitor, env)
        # Enough of the load inside the rate window for both rates to be there.
        wait_for(lambda: monitor.query(panels["rates"]["queries"][1]["expr"]), 60, "a consumption rate")
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            page.goto(monitor.stack.dashboard_url)

            def drawn(panel: str) -> dict[str, Any] | None:
                section = page.locator(f"#panel-{panel}")
                if not section.get_attribute("data-eval-time"):
                    return None
                values = {e.get_attribute("data-series"): e.get_attribute("data-value")
                          for e in section.locator("[data-series]").all()}
                return {"time": float(section.get_attribute("data-eval-time")), "values": values}

            def drawn_with_load() -> dict[str, dict[str, Any]] | None:
                state = {p: drawn(p) for p in ("rates", "lag_partition_messages", "lag_seconds")}
                rates = state["rates"]
                if not all(state.values()) or not rates["values"]:
                    return None
                produced = f"produced {env.prefix}notifications.events"
                consumed = f"consumed {_group(env)} {env.prefix}notifications.events"
                if not (rates["values"].get(produced) and rates["values"].get(consumed)):
                    return None
                # Under load the router's partitions carry some lag between commits.
                lag_rows = state["lag_partition_messages"]["values"]
                if not any(name.startswith(f"{_group(env)} p") for name in lag_rows):
                    return None
                return state

            state = wait_for(drawn_with_load, 90, "the dashboard to draw the load's rates")
            status = page.locator("#status")
            assert status.get_attribute("data-state") == "ok", f"panels failed: {status.inner_text()}"
            page.screenshot(path=str(settings.cache_dir / ARTIFACTS / "dashboard.png"), full_page=True)
        finally:
            browser.close()
        assert load.sent > 0

    for panel_id, panel_state in state.items():
        panel = panels[panel_id]
        expected: dict[str, float] = {}
        for query in panel["queries"]:
            for row in monitor.query(query["expr"], time=panel_state["time"]):
                expected[_legend(query["legend"], row["metric"])] = float(row["value"][1])
        drawn_values = {name: float(v) for name, v in panel_state["values"].items() if v not in ("", None)}
        assert drawn_values, f"{panel_id}: nothing drawn"
        for name, value in drawn_values.items():
            assert name in expected, f"{panel_id}: drew {name!r}, Prometheus has {sorted(expected)}"
            assert value == pytest.approx(expected[name], rel=1e-9, abs=1e-9), (panel_id, name)
    # Only this pipeline's groups: its router, its sinks.
    assert all(name.startswith((f"{_group(env)} p", f"connect-{env.prefix}"))
               for name in state["lag_partition_messages"]["values"]), state["lag_partition_messages"]


def test_a_stopped_worker_fires_the_stall_alert_and_resolves_when_it_goes_on(
        monitor: Monitor, env: PipelineEnv, worker: WorkerProcess, client: NotificationClient) -> None:
    group = _group(env)
    alerts = {"NotipipeConsumerStalled", "NotipipeConsumerLagHigh"}
    with Load(client):
        _wait_until_lag_is_scraped(monitor, env)
        # The alert is quiet while the worker consumes, so what follows is the stop's doing.
        wait_for(lambda: not _firing(monitor, alerts, group=group), 60, "no lag alert while it consumes")
        assert worker.proc is not None
        worker.proc.send_signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        try:
            s = monitor.settings
            # Its window and `for`, the exporter's poll, a scrape, an evaluation and Alertmanager's
            # group wait, with room for a busy two-core machine.
            deadline = s.window_s + s.for_s + s.lag_poll_interval_s + s.scrape_interval_s + 60
            fired = wait_for(lambda: _firing(monitor, alerts, group=group), deadline,
                             f"a stall or lag alert for {group} in Alertmanager")
            fired_after = time.monotonic() - stopped_at
        finally:
            worker.proc.send_signal(signal.SIGCONT)
        assert fired[0]["labels"]["topic"] == f"{env.prefix}notifications.events", fired
        assert fired[0]["annotations"]["runbook"].startswith("docs/operations.md#notipipeconsumer")
        wait_for(lambda: not _firing(monitor, alerts, group=group), 180,
                 f"the alerts for {group} to resolve after SIGCONT (fired {fired_after:.0f}s after SIGSTOP)")

    def notified() -> set[str]:
        return {a["status"] for n in monitor.notifications() for a in n["alerts"]
                if a["labels"].get("group") == group}
    # Alertmanager tells the receiver (the dashboard's webhook) of the firing and the resolution.
    wait_for(lambda: notified() == {"firing", "resolved"}, 60, "the receiver to get both notifications")


def test_a_gateway_rejecting_every_request_fires_the_sink_dlq_and_gateway_alerts(
        monitor: Monitor, env: PipelineEnv, worker: WorkerProcess, client: NotificationClient,
        settings: StackSettings) -> None:
    user = f"reject-{RUN}"
    # Only this test's requests (their body names the user) are rejected, for ten minutes at most.
    fault = json.dumps({"channel": "email", "mode": "reject", "status": 400, "match": user,
                        "duration_s": 600}).encode()
    request = urllib.request.Request(f"{settings.stub_url}/faults", data=fault, method="POST",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).close()
    name = f"{env.prefix}http-email"
    # Rendered with the stack's own home: its secrets file is where Connect's config provider may read.
    rendered = dict(load_connectors(replace(settings, topic_prefix=env.prefix), environ={}))
    apply_connector(settings, name, rendered["http-email"])
    try:
        wait_for(lambda: any(c["name"] == name and c["state"] == "RUNNING" and c["tasks"]
                             and all(t["state"] == "RUNNING" for t in c["tasks"])
                             for c in connector_status(settings)), 120, f"{name} to run")
        email = ChannelPreference(Channel.EMAIL, True, f"{user}@example.com")
        client.set_preferences(Preferences(user_id=user, channels={Channel.EMAIL: email},
                                           updated_at=now_ms()))
        client.flush()
        wait_for(lambda: worker.counters().get("preferences.stored", 0) > 0, 30, "the preferences stored")
        sink_dlq = f"{env.prefix}notifications.sink-dlq.http"
        expected = {("NotipipeSinkDeadLetters", "topic", sink_dlq),
                    ("NotipipeGatewayErrors", "connector", name)}
        seen: set[tuple[str, str, str]] = set()

        def both_fired() -> bool:
            for alert in monitor.alertmanager_alerts():
                labels = alert["labels"]
                seen.update(e for e in expected if e[0] == labels["alertname"] and labels.get(e[1]) == e[2])
            return seen == expected

        # The gateway rejects every request for as long as events keep coming (CRITICAL: no throttle).
        with Load(client, user=user, category="billing", channels=None, per_second=5, priority="CRITICAL"):
            wait_for(both_fired, 180, f"{sorted(expected)} in Alertmanager (seen so far: {seen})")
    finally:
        delete_connector(settings, name)
