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
from pathlib import Path
from typing import Any

from stack.settings import PROJECT_ROOT, StackSettings

CONNECTOR_DIR = PROJECT_ROOT / "connectors"
_PLACEHOLDER = re.compile(r"\$\{([A-Z0-9_]+)\}")


class ConnectorError(RuntimeError):
    """Connect refused a connector config, or a placeholder has no value."""


def placeholders(settings: StackSettings) -> dict[str, str]:
    values = {
        "TOPIC_PREFIX": settings.topic_prefix,
        "POSTGRES_JDBC_URL": settings.postgres_jdbc_url,
        "POSTGRES_USER": "notipipe",
        "POSTGRES_PASSWORD": settings.postgres_password,
        "REGISTRY_URL": f"http://127.0.0.1:{settings.registry_port}/apis/registry/v2",
        "STUB_URL": settings.stub_url,
    }
    for channel in ("email", "sms", "push"):
        key = f"{channel.upper()}_GATEWAY_URL"
        values[key] = os.environ.get(f"NOTIPIPE_{key}", f"{settings.stub_url}/send/{channel}")
    return values


def render(config: dict[str, Any], values: dict[str, str]) -> dict[str, str]:
    def substitute(text: str) -> str:
        def one(match: re.Match[str]) -> str:
            if match.group(1) not in values:
                raise ConnectorError(f"no value for ${{{match.group(1)}}} in a connector config")
            return values[match.group(1)]
        return _PLACEHOLDER.sub(one, text)

    return {key: substitute(str(value)) for key, value in config.items()}


def load_connectors(settings: StackSettings,
                    directory: Path = CONNECTOR_DIR) -> list[tuple[str, dict[str, str]]]:
    values = placeholders(settings)
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


def register_connectors(settings: StackSettings) -> list[str]:
    """PUT each config; a connector whose config is unchanged is left alone. Returns what changed."""
    changed = []
    for name, config in load_connectors(settings):
        url = f"{settings.connect_url}/connectors/{name}/config"
        try:
            current = _request("GET", url)
        except ConnectorError:
            current = None
        wanted = {**config, "name": name}
        if current == wanted:
            continue
        validation = _request("PUT", f"{settings.connect_url}/connector-plugins/"
                                     f"{config['connector.class']}/config/validate", wanted)
        problems = [f"{c['value']['name']}: {'; '.join(c['value']['errors'])}"
                    for c in validation.get("configs", []) if c["value"].get("errors")]
        if problems:
            raise ConnectorError(f"connector {name} has a bad config:\n  " + "\n  ".join(problems))
        _request("PUT", url, wanted)
        changed.append(f"{'updated' if current else 'created'} connector {name}")
    return changed


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
