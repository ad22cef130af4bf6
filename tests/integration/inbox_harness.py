"""Harness for the inbox service's tests: service instances as child processes on a test
pipeline's topics, HTTP calls with a user's token, a live-feed reader, signed receipts, and the
project's connectors registered for the test's topics."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inbox.secret_files import TOKEN_SECRET, gateway_secret_name, read_secrets
from inbox.signing import sign
from inbox.tokens import issue
from stack.connectors_setup import apply_connector, connector_status, delete_connector, load_connectors
from stack.secrets import secret_in
from stack.settings import StackSettings
from streams.connection import postgres as pg_roles
from tests.integration.pipeline import ROOT, PipelineEnv, free_port
from tests.waiting import wait_for

GATEWAY = "itgw"


@dataclass
class Secrets:
    """The secrets directory of a test's inbox instances: a token secret and one gateway's."""

    directory: Path

    @classmethod
    def make(cls, directory: Path) -> Secrets:
        secret_in(directory, TOKEN_SECRET)
        secret_in(directory, gateway_secret_name(GATEWAY))
        return cls(directory)

    def token(self, user: str, ttl_s: int = 600, now_s: int | None = None) -> str:
        secret = read_secrets(self.directory, TOKEN_SECRET)[0]
        return issue(secret, user, int(time.time()) if now_s is None else now_s, ttl_s)

    @property
    def gateway_secret(self) -> bytes:
        return read_secrets(self.directory, gateway_secret_name(GATEWAY))[0]


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


class InboxInstance:
    """`notipipe inbox serve` on the test pipeline's topics, on a port of its own."""

    def __init__(self, env: PipelineEnv, secrets: Secrets, log_dir: Path, dsn: str | None = None) -> None:
        self.env = env
        self.secrets = secrets
        self.port = free_port()
        self.dsn = dsn or pg_roles.dsn(env.stack, pg_roles.READER)
        self.log = log_dir / f"inbox-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> InboxInstance:
        environ = {**os.environ, "PYTHONPATH": str(ROOT),
                   "NOTIPIPE_BOOTSTRAP_SERVERS": self.env.stack.bootstrap_servers,
                   "NOTIPIPE_REGISTRY_URL": self.env.stack.registry_url,
                   "NOTIPIPE_TOPIC_PREFIX": self.env.prefix,
                   "NOTIPIPE_INBOX_PORT": str(self.port),
                   "NOTIPIPE_INBOX_POSTGRES_DSN": self.dsn,
                   "NOTIPIPE_INBOX_SECRETS_DIR": str(self.secrets.directory),
                   "NOTIPIPE_INBOX_GATEWAYS": GATEWAY}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "inbox", "serve"],
                                         env=environ, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        wait_for(self._up, 60, f"the inbox service on port {self.port}")
        return self

    def _up(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"inbox service exited with {self.proc.returncode}:\n{self.log_tail()}")
        try:
            return self.health()["status"] == "ok"
        except OSError:
            return False

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/health", timeout=5) as response:
            return json.load(response)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() \
            else "(no log)"

    def call(self, method: str, path: str, token: str | None = None, body: Any = None,
             headers: dict[str, str] | None = None, raw: bytes | None = None) -> Answer:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json", **(headers or {})})
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return Answer(response.status, _json(response.read()), dict(response.headers))
        except urllib.error.HTTPError as exc:
            return Answer(exc.code, _json(exc.read()), dict(exc.headers))

    def post_receipts(self, receipts: Any, secret: bytes | None = None, gateway: str = GATEWAY,
                      now_s: int | None = None) -> Answer:
        body = json.dumps(receipts).encode()
        now = int(time.time()) if now_s is None else now_s
        headers = sign(secret or self.secrets.gateway_secret, body, now)
        return self.call("POST", f"/v1/receipts/{gateway}", raw=body, headers=headers)

    def feed(self, user: str, token: str | None, *, after: str | None = None,
             last_event_id: str | None = None, token_in_query: bool = True) -> FeedReader:
        return FeedReader(self.port, user, token, after, last_event_id, token_in_query)


def _json(data: bytes) -> Any:
    try:
        return json.loads(data) if data else None
    except ValueError:
        return data.decode(errors="replace")


@dataclass
class Event:
    name: str
    id: str | None
    data: Any


@dataclass
class FeedReader:
    """One connection to the live feed, read in a thread; every event kept in arrival order."""

    port: int
    user: str
    token: str | None
    after: str | None = None
    last_event_id: str | None = None
    token_in_query: bool = True
    events: list[Event] = field(default_factory=list)
    status: int = 0
    ended: bool = False

    def __post_init__(self) -> None:
        query = []
        if self.token and self.token_in_query:
            query.append(f"access_token={self.token}")
        if self.after:
            query.append(f"after={self.after}")
        path = f"/v1/users/{self.user}/feed" + ("?" + "&".join(query) if query else "")
        headers = {"Accept": "text/event-stream"}
        if self.token and not self.token_in_query:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        self._conn.request("GET", path, headers=headers)
        self._response = self._conn.getresponse()
        self.status = self._response.status
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        if self.status == 200:
            self._thread.start()
        else:
            self.body = _json(self._response.read())
            self.ended = True

    def _read(self) -> None:
        name, event_id, data = None, None, []
        try:
            while True:
                line = self._response.readline()
                if not line:
                    break
                text = line.decode().rstrip("\n")
                if text == "":
                    if name is not None:
                        with self._lock:
                            self.events.append(Event(name, event_id, json.loads("\n".join(data))))
                    name, event_id, data = None, None, []
                elif text.startswith("event: "):
                    name = text[7:]
                elif text.startswith("id: "):
                    event_id = text[4:]
                elif text.startswith("data: "):
                    data.append(text[6:])
        except (OSError, ValueError, http.client.HTTPException):
            pass
        self.ended = True

    def notifications(self) -> list[dict[str, Any]]:
        with self._lock:
            return [e.data for e in self.events if e.name == "notification"]

    def ids(self) -> list[str]:
        return [n["delivery_id"] for n in self.notifications()]

    def last_id(self) -> str | None:
        with self._lock:
            return next((e.id for e in reversed(self.events) if e.id), None)

    def wait_ready(self, timeout_s: float = 30) -> Event:
        def ready() -> Event | None:
            with self._lock:
                return next((e for e in self.events if e.name == "ready"), None)
        return wait_for(ready, timeout_s, f"the feed of {self.user} to be ready")

    def wait_ids(self, ids: list[str], timeout_s: float = 60) -> list[str]:
        return wait_for(lambda: set(ids) <= set(self.ids()) and self.ids(), timeout_s,
                        f"{ids} on the feed of {self.user}")

    def close(self) -> None:
        # The socket is shut down under the reader, which then ends; only then is it closed (closing
        # it from here would pull the buffers from under the reading thread).
        sock = self._conn.sock
        if sock is not None:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread.is_alive():
            self._thread.join(10)
        self._conn.close()


@contextmanager
def scoped_connectors(settings: StackSettings, env: PipelineEnv) -> Iterator[list[str]]:
    """The project's connector configs, rendered for the test pipeline's topics and registered
    under names of its own; removed afterwards."""
    names: list[str] = []
    try:
        for name, config in load_connectors(env.stack, environ={}):
            names.append(f"{env.prefix}{name}")
            apply_connector(settings, names[-1], config)

        def running() -> bool:
            rows = {c["name"]: c for c in connector_status(settings)}
            return all(rows.get(n, {}).get("state") == "RUNNING" and rows[n]["tasks"]
                       and all(t["state"] == "RUNNING" for t in rows[n]["tasks"]) for n in names)
        wait_for(running, 120, "the test pipeline's connectors to run")
        yield names
    finally:
        for name in names:
            delete_connector(settings, name)


def wait_row(query: Callable[[], Any], timeout_s: float, what: str) -> Any:
    return wait_for(query, timeout_s, what, interval_s=0.3)
