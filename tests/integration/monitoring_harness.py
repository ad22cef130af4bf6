"""A monitoring stack of a test's own: the project's Prometheus, Alertmanager, lag exporter and
dashboard components, started with short intervals and thresholds given as settings, on free
ports and in a home of their own (the jars and the lag exporter's binary are the stack's), so the
stack's own monitoring and other tests are left alone. It scrapes the stack's JMX agents and the
test's workers (listed in its own targets directory)."""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from monitoring.settings import MonitoringSettings
from stack.components import Component
from stack.monitoring_components import Alertmanager, Dashboard, LagExporter, Prometheus
from stack.process import stop
from stack.settings import StackSettings
from tests.integration.pipeline import free_port


def literal(text: str) -> str:
    """A regex matching exactly `text`."""
    return re.sub(r"([.^$*+?{}\[\]\\|()])", r"\\\1", text)


@dataclass
class Monitor:
    stack: StackSettings  # the stack's, with this monitor's home and ports
    settings: MonitoringSettings
    components: list[Component]

    def start(self) -> None:
        for component in self.components:
            component.start()

    def stop(self) -> None:
        for component in reversed(self.components):
            stop(component.pid_file, timeout_s=30)

    def _get(self, url: str) -> Any:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.load(response)

    def query(self, expr: str, time: float | None = None) -> list[dict[str, Any]]:
        params = {"query": expr, **({"time": str(time)} if time is not None else {})}
        body = self._get(f"{self.stack.prometheus_url}/api/v1/query?{urllib.parse.urlencode(params)}")
        assert body["status"] == "success", body
        return body["data"]["result"]

    def alertmanager_alerts(self) -> list[dict[str, Any]]:
        """What Alertmanager holds and has not seen resolved."""
        return self._get(f"{self.stack.alertmanager_url}/api/v2/alerts?active=true")

    def notifications(self) -> list[dict[str, Any]]:
        """What Alertmanager sent to the receiver (the dashboard's webhook)."""
        return self._get(f"{self.stack.dashboard_url}/api/notifications")["notifications"]

    def log_tails(self) -> str:
        return "\n".join(f"--- {c.name}:\n" + (c.log_file.read_text(errors="replace")[-2000:]
                                                 if c.log_file.exists() else "(no log)")
                         for c in self.components)


def make_monitor(stack: StackSettings, home: Path, topic_prefix: str = "", **overrides: Any) -> Monitor:
    """A monitor of the pipeline under `topic_prefix` (its router group `<prefix>router`, its
    sinks' groups `connect-<prefix>...`), with `overrides` of the default settings."""
    cache = home / ".cache"
    cache.mkdir(parents=True, exist_ok=True)
    for shared in ("dist", "tools", "secrets"):  # the jars, the binaries, the credentials
        link = cache / shared
        if not link.exists():
            link.symlink_to(stack.cache_dir / shared)
    own = replace(stack, home=home, prometheus_port=free_port(), alertmanager_port=free_port(),
                  lag_exporter_port=free_port(), dashboard_port=free_port())
    sinks = f"connect-{literal(topic_prefix)}.+"
    prefixed = MonitoringSettings.from_env({"NOTIPIPE_TOPIC_PREFIX": topic_prefix,
                                            "NOTIPIPE_APP_ID": f"{topic_prefix}router",
                                            "NOTIPIPE_ALERT_SINK_GROUPS": sinks})
    settings = replace(prefixed, **overrides)
    components: list[Component] = [kind(own, monitoring=settings)
                                   for kind in (LagExporter, Alertmanager, Prometheus, Dashboard)]
    return Monitor(own, settings, components)
