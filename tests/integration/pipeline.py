"""Harness for end-to-end tests: a real worker process on topics of the test's own, a clock the
test sets, and a watcher that decodes what arrives on the delivery and DLQ topics."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient

from monitoring.targets import delist_worker, list_worker
from stack.acls_setup import ensure_acls, remove_pipeline_acls
from stack.schemas_setup import register_schemas
from stack.settings import StackSettings
from stack.topics_setup import delete_topics_containing, ensure_topics
from streams.client.sdk import ClientSettings, NotificationClient
from streams.contracts.pipeline_codec import pipeline_codec
from streams.contracts.topics import Topics
from streams.core.model import Delivery
from streams.worker.clock_file import write_clock_file
from tests.integration.kafka_clients import admin_config
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class PipelineEnv:
    """Everything a test needs to talk to one isolated pipeline (its own topic prefix)."""

    stack: StackSettings
    prefix: str
    clock_file: Path
    data_dir: Path
    router_env: dict[str, str]

    @property
    def client_settings(self) -> ClientSettings:
        return ClientSettings(self.stack.bootstrap_servers, self.stack.registry_url, self.prefix)

    def set_clock(self, fake_now_ms: int) -> None:
        write_clock_file(self.clock_file, fake_now_ms)

    def real_clock(self) -> None:
        self.clock_file.unlink(missing_ok=True)


def make_pipeline_env(stack: StackSettings, tmp: Path, router_env: dict[str, str]) -> PipelineEnv:
    prefix = f"it{uuid.uuid4().hex[:8]}."
    # Its own topics, and ACLs for them and its workers' app id (the principals' rights as in
    # production, per prefix).
    scoped = replace(stack, topic_prefix=prefix, partitions=4, app_id=f"{prefix}router")
    ensure_acls(scoped, echo=lambda _: None)
    ensure_topics(scoped, echo=lambda _: None)
    register_schemas(scoped)
    return PipelineEnv(scoped, prefix, tmp / "clock.json", tmp / "worker-data", router_env)


# Worker web ports come from below the kernel's ephemeral range (32768 and up on Linux): a port
# the kernel picked for a probe socket could be handed out again as the local port of any client
# connection before the worker binds it. Ports here are only ever taken by a deliberate bind.
_PORTS = itertools.count(20_000 + os.getpid() % 5_000 * 2)


def free_port() -> int:
    """A loopback port nobody listens on now, never handed out twice in this test session."""
    for port in _PORTS:
        if port >= 32_768:
            break
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port left below the ephemeral range")


def free_port_range(count: int) -> int:
    """The first of `count` consecutive free ports (a replicated cluster's brokers and their
    controller ports follow each other), each handed out once, like `free_port`'s."""
    while True:
        first = free_port()
        if all(free_port() == first + offset for offset in range(1, count)):
            return first


class WorkerUnreachable(AssertionError):
    """A worker's web server did not answer: its counters are unknown, not zero."""


class WorkerProcess:
    """`notipipe worker` as a child process, started, killed and restarted like in production."""

    def __init__(self, env: PipelineEnv, web_port: int | None = None) -> None:
        self.env = env
        self.web_port = web_port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = env.data_dir.parent / f"worker-{self.web_port}.log"

    def start(self) -> None:
        env = {
            **os.environ,
            "NOTIPIPE_BOOTSTRAP_SERVERS": self.env.stack.bootstrap_servers,
            "NOTIPIPE_REGISTRY_URL": self.env.stack.registry_url,
            "NOTIPIPE_TOPIC_PREFIX": self.env.prefix,
            "NOTIPIPE_APP_ID": self.env.stack.app_id,
            "NOTIPIPE_WEB_PORT": str(self.web_port),
            "NOTIPIPE_DATA_DIR": str(self.data_dir),
            "NOTIPIPE_CLOCK_FILE": str(self.env.clock_file),
            "NOTIPIPE_TICK_INTERVAL_S": "0.2",
            "PYTHONPATH": str(ROOT),
            **self.env.router_env,
        }
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=env,
                                         stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        # Listed for the stack's Prometheus like any worker; a kill leaves it listed (down).
        list_worker(self.env.stack, self.target_name, self.web_port, f"{self.env.prefix}router")

    @property
    def target_name(self) -> str:
        return f"{self.env.prefix}worker-{self.web_port}"

    @property
    def data_dir(self) -> Path:
        return self.env.data_dir / str(self.web_port)

    def counters(self) -> dict:
        """The worker's /counters; raises WorkerUnreachable if it does not answer, so that a
        failed read can never pass for a count of zero."""
        url = f"http://127.0.0.1:{self.web_port}/counters"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.load(response)
        except OSError as exc:
            state = "running" if self.proc is not None and self.proc.poll() is None else "not running"
            raise WorkerUnreachable(f"worker on port {self.web_port} ({state}) did not answer "
                                    f"/counters: {exc}\n{self.log_tail()}") from exc

    def counters_if_up(self) -> dict | None:
        """The counters, or None while the worker is starting or stopped (for waits only)."""
        try:
            return self.counters()
        except WorkerUnreachable:
            return None

    def counter(self, name: str) -> int:
        """One counter; a counter the worker has not incremented yet is 0."""
        return int(self.counters().get(name, 0))

    def owned_partitions(self) -> set[int]:
        counters = self.counters_if_up()
        return set(counters["partitions"]) if counters else set()

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no final commit, no flush."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()
        delist_worker(self.env.stack, self.target_name)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return f"(no log at {self.log})"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class Watcher:
    """Decodes every delivery and DLQ record of the pipeline in a background thread."""

    def __init__(self, env: PipelineEnv) -> None:
        topics = Topics(env.prefix)
        self.codec = pipeline_codec(SchemaRegistryClient({"url": env.stack.registry_url}), topics)
        self.topics = list(topics.all_deliveries().values())
        self.dlq_topic = topics.dlq
        self.deliveries: dict[str, list[Delivery]] = defaultdict(list)  # user -> in arrival order
        self.dead_letters: list[tuple[dict, dict[str, bytes]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._consumer = Consumer({**admin_config(env.stack),
                                   "group.id": f"watch-{uuid.uuid4().hex}",
                                   "auto.offset.reset": "earliest", "enable.auto.commit": False})
        self._consumer.subscribe([*self.topics, self.dlq_topic])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self._consumer.poll(0.2)
            if message is None or message.error() is not None:
                continue
            _, record = self.codec.decode(message.value())
            with self._lock:
                if message.topic() == self.dlq_topic:
                    self.dead_letters.append((record, dict(message.headers() or [])))
                else:
                    delivery = Delivery.from_avro(record)
                    self.deliveries[delivery.user_id].append(delivery)
        self._consumer.close()

    def for_user(self, user: str, channel: str | None = None) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries.get(user, [])
                    if channel is None or d.channel.key == channel]

    def wait_for_user(self, user: str, count: int, channel: str | None = None,
                      timeout_s: float = 30) -> list[Delivery]:
        return wait_for(lambda: (found := self.for_user(user, channel)) and len(found) >= count and found,
                        timeout_s, f"{count} deliveries for {user} on {channel or 'any channel'}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


def all_committed(env: PipelineEnv) -> bool:
    """Has the router group committed everything on the events topic?"""
    consumer = Consumer({**admin_config(env.stack), "group.id": f"{env.prefix}router",
                         "enable.auto.commit": False})
    try:
        topic = Topics(env.prefix).events
        parts = [TopicPartition(topic, p) for p in range(env.stack.partitions)]
        for tp in consumer.committed(parts, timeout=10):
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            if high > low and tp.offset < high:
                return False
        return True
    finally:
        consumer.close()


def set_clock(workers: list[WorkerProcess], env: PipelineEnv, fake_now_ms: int | None) -> None:
    """Move the pipeline's clock (None: back to the real one) and wait until every worker runs on
    it. The clock flows from the instant set, so a worker is on it when its reading agrees with
    the flowing target to within a second; the worker re-reads the file every 100 ms."""
    written_ms = time.time_ns() // 1_000_000
    if fake_now_ms is None:
        env.real_clock()
        fake_now_ms = written_ms
    else:
        env.set_clock(fake_now_ms)

    def on_new_clock(worker: WorkerProcess) -> bool:
        target = fake_now_ms + time.time_ns() // 1_000_000 - written_ms
        return abs(worker.counters()["clock_ms"] - target) < 1_000

    for worker in workers:
        wait_for(lambda w=worker: on_new_clock(w), 10, f"worker {worker.web_port} to read the clock")


@contextmanager
def running_worker(env: PipelineEnv, client: NotificationClient, watcher: Watcher) -> Iterator[WorkerProcess]:
    """A worker process of the pipeline, routing, stopped at the end of the block."""
    process = WorkerProcess(env)
    process.start()
    try:
        wait_until_routing(process, client, watcher)
        yield process
    finally:
        process.stop()


def wait_until_routing(worker: WorkerProcess, client: NotificationClient, watcher: Watcher,
                       timeout_s: float = 120) -> None:
    """Ready means: an event sent now comes out as a delivery (partitions assigned, tables restored)."""
    probe = f"probe-{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + timeout_s
    client.send(user_id=probe, category="system.probe", title="probe", body="probe",
                channels=["in_app"])
    client.flush()
    while time.monotonic() < deadline:
        if watcher.for_user(probe):
            return
        if worker.proc is not None and worker.proc.poll() is not None:
            raise AssertionError(f"worker exited with {worker.proc.returncode}:\n{worker.log_tail()}")
        time.sleep(0.2)
    raise AssertionError(f"worker not routing after {timeout_s}s:\n{worker.log_tail()}")


def pipeline_fixtures(scope: str) -> tuple[Any, Any, Any, Any]:
    """The fixtures of a test pipeline (env, client, watcher, running worker) at ``scope``:
    conftest.py makes them per module; a module whose tests kill and restart the worker makes
    them per test (``pipeline_env, client, watcher, worker = pipeline_fixtures("function")``), so
    none depends on what another left behind. The env takes the module's ``ROUTER_ENV``."""

    @pytest.fixture(scope=scope)
    def pipeline_env(settings: StackSettings, tmp_path_factory: pytest.TempPathFactory,
                     request: pytest.FixtureRequest) -> Iterator[PipelineEnv]:
        router_env = getattr(request.module, "ROUTER_ENV", {})
        env = make_pipeline_env(settings, tmp_path_factory.mktemp("pipeline"), router_env)
        yield env
        # Its topics, changelogs, ticks topic and ACLs: a developer's stack would otherwise
        # collect thousands, and every client's metadata refresh grows with them.
        delete_topics_containing(settings, env.prefix.rstrip("."))
        remove_pipeline_acls(env.stack)

    @pytest.fixture(scope=scope)
    def client(pipeline_env: PipelineEnv) -> NotificationClient:
        return NotificationClient(pipeline_env.client_settings)

    @pytest.fixture(scope=scope)
    def watcher(pipeline_env: PipelineEnv) -> Iterator[Watcher]:
        watcher = Watcher(pipeline_env)
        yield watcher
        watcher.close()

    @pytest.fixture(scope=scope)
    def worker(pipeline_env: PipelineEnv, client: NotificationClient,
               watcher: Watcher) -> Iterator[WorkerProcess]:
        with running_worker(pipeline_env, client, watcher) as process:
            yield process

    return pipeline_env, client, watcher, worker
