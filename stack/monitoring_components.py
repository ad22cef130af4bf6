"""The stack's monitoring parts: the consumer-lag exporter, the PostgreSQL exporter, Alertmanager,
Prometheus and the dashboard. Each listens on 127.0.0.1 only; configs are generated into
.cache/run/monitoring at every `stack up` (a running Prometheus or Alertmanager reloads them, a
running lag exporter restarts), data goes to .cache/data.

The JMX exporter agents run inside the broker's and Connect's JVMs (stack/jmx_agent.py).
"""

from __future__ import annotations

import os
import shutil
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from monitoring import alerts, lag_exporter
from monitoring.prometheus_config import RULES_FILE, alertmanager_config, dump, prometheus_config
from monitoring.settings import MonitoringSettings
from stack.artifacts import PrerequisiteError
from stack.components import Component, http_ok
from stack.process import stop
from stack.settings import PROJECT_ROOT, StackSettings
from streams.connection import postgres as pg_roles

SETUP_HINT = "run scripts/setup.sh, which installs it"


def _debian_binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if not path:
        raise PrerequisiteError(f"{name} not found: install Debian's {package} package ({SETUP_HINT})")
    return path


def _write_if_changed(path: Path, text: str) -> bool:
    """Write `text` unless the file already holds it. True if it changed."""
    try:
        if path.read_text() == text:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)
    return True


@dataclass
class MonitoringComponent(Component):
    """A monitoring part whose config is generated; `refresh` applies a changed one to a running
    process (reload or restart)."""

    monitoring: MonitoringSettings = field(default_factory=MonitoringSettings.from_env)

    @property
    def config_dir(self) -> Path:
        return self.settings.monitoring_run_dir

    def write_config(self) -> bool:
        """Write the generated config files; True if any changed."""
        return False

    def prepare(self) -> None:
        self.write_config()

    def apply_changed_config(self) -> None:
        stop(self.pid_file, timeout_s=30)

    def start(self) -> bool:
        if self.pid() is not None and self.write_config():
            self.apply_changed_config()
        return super().start()


def _post(url: str) -> None:
    request = urllib.request.Request(url, method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=10):
        pass


@dataclass
class LagExporter(MonitoringComponent):
    name: str = "lag-exporter"

    def __post_init__(self) -> None:
        self.port = self.settings.lag_exporter_port

    @property
    def config_file(self) -> Path:
        return self.config_dir / "klag-exporter.toml"

    def write_config(self) -> bool:
        return _write_if_changed(self.config_file, lag_exporter.config_text(self.settings, self.monitoring))

    def command(self) -> list[str]:
        binary = lag_exporter.binary(self.settings)
        if not binary.exists():
            raise PrerequisiteError(
                f"{binary} is missing: scripts/setup.sh builds klag-exporter {lag_exporter.VERSION} "
                "with cargo (about 3 minutes, once)")
        return [str(binary), "--config", str(self.config_file), "--log-level", "warn"]

    def env(self) -> dict[str, str]:
        return {**os.environ, lag_exporter.PASSWORD_VARIABLE: lag_exporter.password(self.settings)}

    def healthy(self) -> bool:
        return http_ok(f"http://127.0.0.1:{self.port}/health")


@dataclass
class PostgresExporter(MonitoringComponent):
    name: str = "postgres-exporter"

    def __post_init__(self) -> None:
        self.port = self.settings.postgres_exporter_port

    def command(self) -> list[str]:
        return [_debian_binary("prometheus-postgres-exporter", "prometheus-postgres-exporter"),
                f"--web.listen-address=127.0.0.1:{self.port}", "--disable-settings-metrics"]

    def env(self) -> dict[str, str]:
        # Server-wide statistics need no table rights: the reader role (it cannot write anything
        # but an inbox row's read_at) is enough, and its password goes by environment.
        s = self.settings
        dsn = (f"postgresql://{pg_roles.READER.name}:{pg_roles.password(s, pg_roles.READER)}"
               f"@127.0.0.1:{s.postgres_port}/notipipe?sslmode=disable")
        return {**os.environ, "DATA_SOURCE_NAME": dsn}

    def healthy(self) -> bool:
        return http_ok(f"http://127.0.0.1:{self.port}/")


@dataclass
class Alertmanager(MonitoringComponent):
    name: str = "alertmanager"

    def __post_init__(self) -> None:
        self.port = self.settings.alertmanager_port

    @property
    def config_file(self) -> Path:
        return self.config_dir / "alertmanager.yml"

    def write_config(self) -> bool:
        return _write_if_changed(self.config_file, dump(alertmanager_config(self.settings, self.monitoring)))

    def apply_changed_config(self) -> None:
        _post(f"{self.settings.alertmanager_url}/-/reload")

    def command(self) -> list[str]:
        data = self.settings.data_dir / "alertmanager"
        data.mkdir(parents=True, exist_ok=True)
        return [_debian_binary("prometheus-alertmanager", "prometheus-alertmanager"),
                f"--config.file={self.config_file}", f"--storage.path={data}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                # One instance: no gossip port (its default, 9094, would sit among the brokers').
                "--cluster.listen-address=", "--log.level=warn"]

    def healthy(self) -> bool:
        return http_ok(f"{self.settings.alertmanager_url}/-/ready")


@dataclass
class Prometheus(MonitoringComponent):
    name: str = "prometheus"

    def __post_init__(self) -> None:
        self.port = self.settings.prometheus_port

    @property
    def config_file(self) -> Path:
        return self.config_dir / "prometheus.yml"

    def write_config(self) -> bool:
        self.settings.worker_targets_dir.mkdir(parents=True, exist_ok=True)
        rules = _write_if_changed(self.config_dir / RULES_FILE, alerts.render(self.monitoring))
        config = _write_if_changed(self.config_file, dump(prometheus_config(self.settings, self.monitoring)))
        return rules or config

    def apply_changed_config(self) -> None:
        _post(f"{self.settings.prometheus_url}/-/reload")

    def command(self) -> list[str]:
        data = self.settings.data_dir / "prometheus"
        data.mkdir(parents=True, exist_ok=True)
        return [_debian_binary("prometheus", "prometheus"), f"--config.file={self.config_file}",
                f"--storage.tsdb.path={data}",
                f"--storage.tsdb.retention.time={self.monitoring.retention_days}d",
                f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-lifecycle",
                "--log.level=warn"]

    def healthy(self) -> bool:
        return http_ok(f"{self.settings.prometheus_url}/-/ready")


@dataclass
class Dashboard(MonitoringComponent):
    name: str = "dashboard"

    def __post_init__(self) -> None:
        self.port = self.settings.dashboard_port

    def command(self) -> list[str]:
        return [sys.executable, "-m", "monitoring.dashboard"]

    def env(self) -> dict[str, str]:
        root = str(PROJECT_ROOT)
        return {**os.environ, **self.monitoring.environ(),
                "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", ""),
                "NOTIPIPE_DASHBOARD_PORT": str(self.port),
                "NOTIPIPE_PROMETHEUS_PORT": str(self.settings.prometheus_port),
                "NOTIPIPE_ALERTMANAGER_PORT": str(self.settings.alertmanager_port)}

    def healthy(self) -> bool:
        return http_ok(f"{self.settings.dashboard_url}/health")


def monitoring_components(settings: StackSettings) -> list[Component]:
    """In start order. None when NOTIPIPE_MONITORING=0."""
    if not settings.monitoring:
        return []
    return [LagExporter(settings), PostgresExporter(settings), Alertmanager(settings),
            Prometheus(settings), Dashboard(settings)]

