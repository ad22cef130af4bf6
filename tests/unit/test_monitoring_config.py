"""The generated monitoring configs (Prometheus, Alertmanager, lag exporter, JMX agents), the
Grafana dashboard's freshness, worker targets, the dashboard's API and `notipipe lag`'s logic."""

from __future__ import annotations

import asyncio
import json
import re
import tomllib
from dataclasses import replace
from pathlib import Path

import yaml
from aiohttp.test_utils import TestClient, TestServer

from monitoring import grafana, jmx, lag_exporter, panels, targets
from monitoring.dashboard import create_app
from monitoring.lag import PartitionLag, format_table, lag_seconds, watched_topics
from monitoring.prometheus_config import alertmanager_config, prometheus_config
from monitoring.settings import MonitoringSettings
from stack.secrets import secret
from stack.settings import StackSettings
from stack.tls import TlsFiles, ensure_certificates
from streams.connection.kafka import password_secret_name


def _stack(tmp_path: Path) -> StackSettings:
    return StackSettings.from_env({"NOTIPIPE_HOME": str(tmp_path), "NOTIPIPE_KAFKA_PORT": "19092",
                                   "NOTIPIPE_LAG_EXPORTER_PORT": "19194"})


def test_the_committed_grafana_dashboard_is_current() -> None:
    assert grafana.OUTPUT.read_text() == grafana.render(), \
        "monitoring/grafana/notipipe.json is stale: run `python -m monitoring.grafana`"


def test_grafana_and_the_live_page_draw_the_same_queries() -> None:
    s = MonitoringSettings()
    board = json.loads(grafana.render(s))
    live = {p.title: [q.expr for q in p.queries] for p in panels.panels(s)}
    drawn = {p["title"]: [t["expr"] for t in p.get("targets", [])] for p in board["panels"]}
    assert drawn == live
    for panel in panels.resolved(s):  # the live page gets a concrete window
        assert all("$__rate_interval" not in q["expr"] for q in panel["queries"])


def test_the_lag_exporter_config_is_per_partition_on_loopback_with_client_properties(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    ensure_certificates(stack)  # the stack's CA, as `stack up` makes it
    secret(stack, password_secret_name("monitoring"))
    s = MonitoringSettings.from_env(
        {"NOTIPIPE_LAG_EXPORTER_KAFKA_CONFIG": "client.id=lag, fetch.wait.max.ms=50"})
    config = tomllib.loads(lag_exporter.config_text(stack, s))
    assert config["exporter"]["granularity"] == "partition"
    assert (config["exporter"]["http_host"], config["exporter"]["http_port"]) == ("127.0.0.1", 19194)
    cluster = config["clusters"][0]
    assert cluster["bootstrap_servers"] == "127.0.0.1:19092"
    # The monitoring principal's login, its password named, not written; then the operator's own.
    assert cluster["consumer_properties"] == {
        "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "monitoring", "sasl.password": "${NOTIPIPE_LAG_EXPORTER_KAFKA_PASSWORD}",
        "ssl.ca.location": str(TlsFiles.of(stack).ca_cert.resolve()),
        "ssl.endpoint.identification.algorithm": "https", "client.id": "lag", "fetch.wait.max.ms": "50"}
    assert secret(stack, password_secret_name("monitoring")) not in lag_exporter.config_text(stack, s)
    groups = re.compile(cluster["group_whitelist"][0])
    assert groups.fullmatch("notipipe-router") and groups.fullmatch("connect-http-email")
    assert not groups.fullmatch("watch-1234") and not groups.fullmatch("notipipe-router-x")
    topics = re.compile(cluster["topic_whitelist"][0])
    assert topics.fullmatch("it12.notifications.events") and not topics.fullmatch("notipipe-router-ticks")


def test_prometheus_scrapes_every_part_on_loopback_and_discovers_workers_from_files(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    config = yaml.safe_load(yaml.safe_dump(prometheus_config(stack, MonitoringSettings())))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"prometheus", "alertmanager", "lag-exporter", "kafka", "connect", "postgres",
                         "workers"}
    for name, job in jobs.items():
        for target in (t for group in job.get("static_configs", []) for t in group["targets"]):
            assert target.startswith("127.0.0.1:"), name
    assert jobs["workers"]["file_sd_configs"][0]["files"] == [str(stack.worker_targets_dir / "*.json")]
    receiver = alertmanager_config(stack, MonitoringSettings())["receivers"][0]
    assert receiver["webhook_configs"][0]["url"] == f"{stack.dashboard_url}/api/notifications"


def test_jmx_rules_are_explicit() -> None:
    for rules in (jmx.broker_rules(), jmx.connect_rules()):
        assert rules["includeObjectNames"], "the agents read only the named MBeans"
        for rule in rules["rules"]:
            # The agent wraps a pattern in ^.*(?:...).*$: ending at "attribute:" keeps "count" from
            # matching "count-avg" too; no rule is a catch-all.
            assert rule["pattern"].endswith(":") or rule["pattern"].endswith(": ([a-z-]+)"), rule["pattern"]
            assert rule["name"].startswith("kafka_")


def test_a_worker_is_listed_and_delisted(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    path = targets.list_worker(stack, "it12ab/router:7", 16070, "it12ab.router")
    labels = {"worker": "it12ab/router:7", "app_id": "it12ab.router"}
    assert json.loads(path.read_text()) == [{"targets": ["127.0.0.1:16070"], "labels": labels}]
    assert targets.listed_workers(stack) == {"it12ab/router:7": "127.0.0.1:16070"}
    assert targets.delist_worker(stack, "it12ab/router:7")
    assert targets.listed_workers(stack) == {}
    assert not targets.delist_worker(stack, "it12ab/router:7")


def test_lag_in_seconds_is_the_age_of_the_oldest_waiting_record() -> None:
    assert lag_seconds(0, None, 10_000) == 0.0
    assert lag_seconds(5, 4_000, 10_000) == 6.0
    assert lag_seconds(5, None, 10_000) is None
    assert lag_seconds(5, 12_000, 10_000) == 0.0  # another host's clock ahead


def test_lag_watches_the_router_inputs_and_the_sinks_delivery_topics() -> None:
    s = MonitoringSettings()
    router_topics = ["notifications.events", "notifications.preferences", "notipipe-router-ticks"]
    assert watched_topics("notipipe-router", router_topics, s) == router_topics[:2]
    sms = ["notifications.deliveries.sms"]
    assert watched_topics("connect-http-sms", sms, s) == sms
    assert watched_topics("other", ["x"], s) == ["x"]


def test_the_lag_table_totals_each_group_and_topic() -> None:
    rows = [PartitionLag("g", "notifications.events", 0, 10, 15, 4.0),
            PartitionLag("g", "notifications.events", 1, 7, 7, 0.0),
            PartitionLag("g", "notifications.preferences", 0, 1, 3, None)]
    text = format_table(rows)
    assert "g notifications.events: lag 5 messages, oldest waiting 4.0 s" in text
    assert "g notifications.preferences: lag 2 messages, oldest waiting ?" in text


def test_the_dashboard_serves_panels_notifications_and_refuses_other_apis() -> None:
    async def scenario() -> None:
        s = replace(MonitoringSettings(), scrape_interval_s=1, lag_poll_interval_s=1)
        async with TestClient(TestServer(create_app("http://127.0.0.1:9", s))) as client:
            config = await (await client.get("/api/panels")).json()
            assert config["refresh_s"] == 2 and config["rate_window"] == "15s"
            assert [p["id"] for p in config["panels"]][:3] == ["alerts", "lag_seconds", "rates"]
            assert (await client.get("/api/prom/admin")).status == 404
            unreachable = await client.get("/api/prom/query", params={"query": "up"})
            assert unreachable.status == 502 and "does not answer" in (await unreachable.json())["error"]
            sent = {"status": "firing", "alerts": [{"status": "firing", "labels": {"alertname": "X"}}]}
            assert (await client.post("/api/notifications", json=sent)).status == 200
            assert (await (await client.get("/api/notifications")).json())["notifications"] == [sent]
            page = await client.get("/")
            assert page.status == 200 and "/static/dashboard.js" in await page.text()
    asyncio.run(scenario())
