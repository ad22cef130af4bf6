"""Register every connector in connectors/ with Kafka Connect, idempotently, and report status.

A connector file is `{"name": ..., "config": {...}}`; `${NAME}` in a value is replaced from
`placeholders()`, so one file works on the local stack and, with other variables, elsewhere.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stack.settings import PROJECT_ROOT, StackSettings
from streams.connection import postgres
from streams.connection.http import connect_client

CONNECTOR_DIR = PROJECT_ROOT / "connectors"
CONNECTOR_SECRETS_FILE = "connector-secrets.properties"  # in the stack's secrets dir (secret_files.py)
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
    | POSTGRES_SINK_USER | - | `notipipe_sink` (streams/connection/postgres.py) |
    | CONNECT_SECRETS_FILE | NOTIPIPE_CONNECT_SECRETS_FILE | the stack's connector-secrets.properties |
    | STUB_URL | NOTIPIPE_STUB_URL | the local provider stub |
    | DLQ_REPLICATION_FACTOR | NOTIPIPE_DLQ_REPLICATION_FACTOR | the stack's replication factor (1 or 3) |

    Secrets are never values here: a config names them as `${file:${CONNECT_SECRETS_FILE}:<key>}`,
    which Connect's FileConfigProvider reads when it starts a task (the file is written by `stack up`,
    stack/secret_files.py; elsewhere it is the path of that file as Connect sees it). The JDBC URL
    gets `logServerErrorDetail=false`, so the driver's errors carry no row values into Connect's log.
    """
    def env(name: str, default: str) -> str:
        return environ.get(f"NOTIPIPE_{name}") or default

    stub_url = env("STUB_URL", settings.stub_url)
    values = {
        "TOPIC_PREFIX": settings.topic_prefix,
        "POSTGRES_JDBC_URL": without_error_detail(env("POSTGRES_JDBC_URL", settings.postgres_jdbc_url)),
        "POSTGRES_SINK_USER": postgres.SINK.name,
        "CONNECT_SECRETS_FILE": env("CONNECT_SECRETS_FILE",
                                    str(settings.cache_dir / "secrets" / CONNECTOR_SECRETS_FILE)),
        "REGISTRY_URL": env("CONNECT_REGISTRY_URL",
                            f"http://127.0.0.1:{settings.registry_port}/apis/registry/v2"),
        "STUB_URL": stub_url,
        "DLQ_REPLICATION_FACTOR": env("DLQ_REPLICATION_FACTOR", str(settings.replication_factor)),
    }
    for channel in ("email", "sms", "push"):
        key = f"{channel.upper()}_GATEWAY_URL"
        values[key] = env(key, f"{stub_url}/send/{channel}")
    return values


def without_error_detail(jdbc_url: str) -> str:
    """The PostgreSQL JDBC URL with the driver's server-detail logging off (see placeholders)."""
    if "logservererrordetail=" in jdbc_url.lower():
        return jdbc_url
    return jdbc_url + ("&" if "?" in jdbc_url else "?") + "logServerErrorDetail=false"


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


# Connect answers 409, or 500 "a rebalance is expected", while its workers' group rebalances (after
# any connector is created or changed): the same request goes through once it has settled.
REBALANCE_WAIT_S = 60.0


def _rebalancing(code: int, detail: str) -> bool:
    return code == 409 or (code in (500, 503) and "rebalance" in detail.lower())


def connect_request(settings: StackSettings, method: str, path: str, body: Any = None) -> Any:
    """One call of Connect's REST API at `path`, authenticated (streams/connection/http.py); asked
    again while Connect rebalances, for up to REBALANCE_WAIT_S."""
    url = f"{settings.connect_url}{path}"
    data = json.dumps(body).encode() if body is not None else None
    deadline = time.monotonic() + REBALANCE_WAIT_S
    pause = 0.5
    while True:
        request = urllib.request.Request(url, data=data, method=method, headers={
            "Content-Type": "application/json", "Authorization": connect_client(settings).header()})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                text = response.read()
                return json.loads(text) if text else None
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            if exc.code in (401, 403):
                raise ConnectorError(
                    f"Kafka Connect at {settings.connect_url} refused the credentials ({exc.code}); on the "
                    "local stack leave NOTIPIPE_CONNECT_USERNAME and NOTIPIPE_CONNECT_PASSWORD unset, "
                    "elsewhere set them to a user of its REST API") from None
            if _rebalancing(exc.code, detail) and time.monotonic() < deadline:
                time.sleep(pause)
                pause = min(5.0, pause * 2)
                continue
            raise ConnectorError(f"{method} {url} -> {exc.code}: {detail}") from None


def apply_connector(settings: StackSettings, name: str, config: dict[str, str]) -> str | None:
    """Create or update one connector after Connect validated its config; None if unchanged."""
    path = f"/connectors/{name}/config"
    try:
        current = connect_request(settings, "GET", path)
    except ConnectorError as exc:
        if "-> 404" not in str(exc):
            raise
        current = None
    wanted = {**config, "name": name}
    if current == wanted:
        return None
    validation = connect_request(settings, "PUT",
                          f"/connector-plugins/{config['connector.class']}/config/validate", wanted)
    problems = [f"{c['value']['name']}: {'; '.join(c['value']['errors'])}"
                for c in validation.get("configs", []) if c["value"].get("errors")]
    if problems:
        raise ConnectorError(f"connector {name} has a bad config:\n  " + "\n  ".join(problems))
    connect_request(settings, "PUT", path, wanted)
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
        connect_request(settings, "DELETE", f"/connectors/{name}")
    except ConnectorError as exc:
        if "-> 404" in str(exc):
            return False
        raise
    return True


def restart_connector(settings: StackSettings, name: str, only_failed: bool = True) -> Any:
    """Restart a connector and its tasks (by default only the failed ones), e.g. after the
    database or a gateway was down long enough to fail a task."""
    query = f"includeTasks=true&onlyFailed={'true' if only_failed else 'false'}"
    return connect_request(settings, "POST", f"/connectors/{name}/restart?{query}")


def connector_tasks(settings: StackSettings, name: str) -> list[dict[str, Any]]:
    """The connector's tasks with the config each runs with (`[{"id": ..., "config": ...}]`)."""
    return connect_request(settings, "GET", f"/connectors/{name}/tasks") or []


def connector_status(settings: StackSettings) -> list[dict[str, Any]]:
    """Each connector with its state, its tasks' states and the trace of any failure."""
    expanded = connect_request(settings, "GET", "/connectors?expand=status") or {}
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
