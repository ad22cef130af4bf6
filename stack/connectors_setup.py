"""Register every connector in connectors/ with Kafka Connect, idempotently, and report status.

A connector file is `{"name": ..., "config": {...}}`; `${NAME}` in a value is replaced from
`placeholders()`, so one file works on the local stack and, with other variables, elsewhere.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stack.settings import PROJECT_ROOT, StackSettings

CONNECTOR_DIR = PROJECT_ROOT / "connectors"
_PLACEHOLDER = re.compile(r"\$\{([A-Z0-9_]+)\}")


class ConnectorError(RuntimeError):
    """Connect refused a connector config, or a placeholder has no value."""


def placeholders(settings: StackSettings, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Values for `${NAME}` in connector files. Addresses are as Connect sees them; the NOTIPIPE_*
    variables below override them (docker-compose.yml sets them to container addresses).

    | placeholder | variable | default |
    |---|---|---|
    | <CHANNEL>_GATEWAY_URL (EMAIL, SMS, PUSH) | NOTIPIPE_<CHANNEL>_GATEWAY_URL | stub /send/<channel> |
    | REGISTRY_URL | NOTIPIPE_CONNECT_REGISTRY_URL | the local registry's v2 API |
    | POSTGRES_JDBC_URL | NOTIPIPE_POSTGRES_JDBC_URL | the local PostgreSQL |
    | STUB_URL | NOTIPIPE_STUB_URL | the local provider stub |
    | DLQ_REPLICATION_FACTOR | NOTIPIPE_DLQ_REPLICATION_FACTOR | 1 (one broker); 3 in production |
    """
    def env(name: str, default: str) -> str:
        return environ.get(f"NOTIPIPE_{name}") or default

    stub_url = env("STUB_URL", settings.stub_url)
    values = {
        "TOPIC_PREFIX": settings.topic_prefix,
        "POSTGRES_JDBC_URL": env("POSTGRES_JDBC_URL", settings.postgres_jdbc_url),
        "POSTGRES_USER": "notipipe",
        "POSTGRES_PASSWORD": settings.postgres_password,
        "REGISTRY_URL": env("CONNECT_REGISTRY_URL",
                            f"http://127.0.0.1:{settings.registry_port}/apis/registry/v2"),
        "STUB_URL": stub_url,
        "DLQ_REPLICATION_FACTOR": env("DLQ_REPLICATION_FACTOR", "1"),
    }
    for channel in ("email", "sms", "push"):
        key = f"{channel.upper()}_GATEWAY_URL"
        values[key] = env(key, f"{stub_url}/send/{channel}")
    return values


def render(config: dict[str, Any], values: dict[str, str]) -> dict[str, str]:
    def substitute(text: str) -> str:
        def one(match: re.Match[str]) -> str:
            if match.group(1) not in values:
                raise ConnectorError(f"no value for ${{{match.group(1)}}} in a connector config")
            return values[match.group(1)]
        return _PLACEHOLDER.sub(one, text)

    return {key: substitute(str(value)) for key, value in config.items()}


def load_connectors(settings: StackSettings, directory: Path = CONNECTOR_DIR,
                    environ: Mapping[str, str] = os.environ) -> list[tuple[str, dict[str, str]]]:
    values = placeholders(settings, environ)
    found = []
    for path in sorted(directory.glob("*.json")):
        spec = json.loads(path.read_text())
        found.append((spec["name"], render(spec["config"], values)))
    return found


def _request(method: str, url: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            text = response.read()
            return json.loads(text) if text else None
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        raise ConnectorError(f"{method} {url} -> {exc.code}: {detail}") from None


def apply_connector(settings: StackSettings, name: str, config: dict[str, str]) -> str | None:
    """Create or update one connector after Connect validated its config; None if unchanged."""
    url = f"{settings.connect_url}/connectors/{name}/config"
    try:
        current = _request("GET", url)
    except ConnectorError:
        current = None
    wanted = {**config, "name": name}
    if current == wanted:
        return None
    validation = _request("PUT", f"{settings.connect_url}/connector-plugins/"
                                 f"{config['connector.class']}/config/validate", wanted)
    problems = [f"{c['value']['name']}: {'; '.join(c['value']['errors'])}"
                for c in validation.get("configs", []) if c["value"].get("errors")]
    if problems:
        raise ConnectorError(f"connector {name} has a bad config:\n  " + "\n  ".join(problems))
    _request("PUT", url, wanted)
    return f"{'updated' if current else 'created'} connector {name}"


def register_connectors(settings: StackSettings, directory: Path = CONNECTOR_DIR,
                        environ: Mapping[str, str] = os.environ) -> list[str]:
    """PUT each config; a connector whose config is unchanged is left alone. Returns what changed."""
    changed = []
    for name, config in load_connectors(settings, directory, environ):
        change = apply_connector(settings, name, config)
        if change:
            changed.append(change)
    return changed


def delete_connector(settings: StackSettings, name: str) -> bool:
    """Remove a connector (its committed offsets stay in its consumer group). False if unknown."""
    try:
        _request("DELETE", f"{settings.connect_url}/connectors/{name}")
    except ConnectorError as exc:
        if "-> 404" in str(exc):
            return False
        raise
    return True


def restart_connector(settings: StackSettings, name: str, only_failed: bool = True) -> Any:
    """Restart a connector and its tasks (by default only the failed ones), e.g. after the
    database or a gateway was down long enough to fail a task."""
    query = f"includeTasks=true&onlyFailed={'true' if only_failed else 'false'}"
    return _request("POST", f"{settings.connect_url}/connectors/{name}/restart?{query}")


def connector_tasks(settings: StackSettings, name: str) -> list[dict[str, Any]]:
    """The connector's tasks with the config each runs with (`[{"id": ..., "config": ...}]`)."""
    return _request("GET", f"{settings.connect_url}/connectors/{name}/tasks") or []


def connector_status(settings: StackSettings) -> list[dict[str, Any]]:
    """Each connector with its state, its tasks' states and the trace of any failure."""
    expanded = _request("GET", f"{settings.connect_url}/connectors?expand=status") or {}
    rows = []
    for name, info in sorted(expanded.items()):
        status = info["status"]
        rows.append({
            "name": name,
            "state": status["connector"]["state"],
            "trace": status["connector"].get("trace"),
            "tasks": [{"id": t["id"], "state": t["state"], "trace": t.get("trace")}
                      for t in status.get("tasks", [])],
        })
    return rows
