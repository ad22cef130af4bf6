"""The stack's own monitoring: `stack status` shows its parts, Prometheus scrapes every target
and holds every alert rule, and each part listens on loopback only."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from monitoring.alerts import ALERTS
from stack.settings import StackSettings
from tests.waiting import wait_for

PARTS = ("lag-exporter", "postgres-exporter", "alertmanager", "prometheus", "dashboard")


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def test_status_shows_the_monitoring_parts_up(settings: StackSettings) -> None:
    result = subprocess.run([sys.executable, "-m", "streams.cli", "stack", "status", "--json"],
                            capture_output=True, text=True, timeout=120)
    states = {row["name"]: row["state"] for row in json.loads(result.stdout)["components"]}
    assert {name: states.get(name) for name in PARTS} == dict.fromkeys(PARTS, "up")


def test_prometheus_scrapes_every_part_and_holds_every_rule(settings: StackSettings) -> None:
    def static_targets_up() -> dict[str, str] | None:
        targets = _get(f"{settings.prometheus_url}/api/v1/targets")["data"]["activeTargets"]
        health = {t["labels"]["job"]: t["health"] for t in targets if t["labels"]["job"] != "workers"}
        return health if set(health.values()) == {"up"} else None

    health = wait_for(static_targets_up, 60, "every static target of the stack's Prometheus up")
    assert set(health) == {"prometheus", "alertmanager", "lag-exporter", "kafka", "connect", "postgres"}
    groups = _get(f"{settings.prometheus_url}/api/v1/rules")["data"]["groups"]
    rules = {r["name"]: r["health"] for g in groups for r in g["rules"]}
    assert rules == {a.name: "ok" for a in ALERTS}


def _listening(port: int) -> set[str]:
    """Local addresses of the sockets listening on `port` (from /proc/net/tcp and tcp6)."""
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if int(port_hex, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                addresses.add(address)
    return addresses


def test_every_monitoring_part_listens_on_loopback_only(settings: StackSettings) -> None:
    loopback = {"0100007F",  # 127.0.0.1
                "0000000000000000FFFF00000100007F",  # ::ffff:127.0.0.1 (a JVM's IPv4 socket)
                "00000000000000000000000001000000"}  # ::1
    ports = {"prometheus": settings.prometheus_port, "alertmanager": settings.alertmanager_port,
             "lag-exporter": settings.lag_exporter_port, "kafka JMX agent": settings.kafka_jmx_port,
             "connect JMX agent": settings.connect_jmx_port,
             "postgres-exporter": settings.postgres_exporter_port, "dashboard": settings.dashboard_port}
    for name, port in ports.items():
        addresses = _listening(port)
        assert addresses, f"nothing listens on {name}'s port {port}"
        assert addresses <= loopback, f"{name} listens on {addresses}"
