"""The stack's components: how each is configured, started and health-checked."""

from __future__ import annotations

import base64
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from stack import artifacts
from stack.artifacts import PrerequisiteError, check_java
from stack.process import StartError, log_tail, read_pid, spawn, wait_until
from stack.settings import StackSettings


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def http_ok(url: str, timeout_s: float = 3.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return 200 <= response.status < 300
    except OSError:
        return False


@dataclass
class Component:
    """One process of the stack. Subclasses fill in command, health and address."""

    settings: StackSettings
    name: str = ""
    port: int = 0

    @property
    def pid_file(self) -> Path:
        return self.settings.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.settings.log_dir / f"{self.name}.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def pid(self) -> int | None:
        return read_pid(self.pid_file)

    def healthy(self) -> bool:
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Write config files and initialise data before the first start."""

    def env(self) -> dict[str, str] | None:
        return None

    def start(self) -> bool:
        """Start unless running; wait until healthy. True if it was started now."""
        if self.pid() is not None:
            wait_until(self.healthy, self.settings.start_timeout_s, f"{self.name} to be healthy",
                       alive=lambda: self.pid() is not None)
            return False
        if port_open(self.port):
            raise StartError(
                f"{self.name}: port {self.port} is already taken by a process this stack did not "
                f"start (see `ss -ltnp 'sport = :{self.port}'`). Stop it, or choose another port "
                f"with the NOTIPIPE_*_PORT variables."
            )
        self.prepare()
        spawn(self.command(), self.log_file, self.pid_file, env=self.env())
        try:
            wait_until(self.healthy, self.settings.start_timeout_s, f"{self.name} to be healthy",
                       alive=lambda: self.pid() is not None)
        except StartError as exc:
            raise StartError(f"{self.name} failed to start: {exc}\n"
                             f"  last lines of {self.log_file}:\n{log_tail(self.log_file)}") from None
        return True


def _log4j2_config(settings: StackSettings) -> Path:
    """One log4j2 config for the JVMs: INFO to stdout (captured in each component's log)."""
    path = settings.run_dir / "log4j2.properties"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "status = warn\n"
        "appender.out.type = Console\nappender.out.name = OUT\n"
        "appender.out.layout.type = PatternLayout\n"
        "appender.out.layout.pattern = [%d] %p %m (%c)%n\n"
        "rootLogger.level = INFO\nrootLogger.appenderRef.out.ref = OUT\n"
        "logger.kafka.name = kafka\nlogger.kafka.level = WARN\n"
        "logger.kafkaorg.name = org.apache.kafka\nlogger.kafkaorg.level = WARN\n"
        "logger.connect.name = org.apache.kafka.connect\nlogger.connect.level = INFO\n"
        "logger.reflections.name = org.reflections\nlogger.reflections.level = ERROR\n"
    )
    return path


def new_cluster_id() -> str:
    """A KRaft cluster id: a random UUID in URL-safe base64, as `kafka-storage random-uuid` makes.
    Like Kafka's own, never one that starts with '-': the storage tool would read it as an option
    (about 1 in 64 ids, so about 1 in 64 fresh stacks failed to format)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _java_cmd(settings: StackSettings, heap: str, classpath: str, main: str, *args: str) -> list[str]:
    return [check_java(), "-Xms128m", f"-Xmx{heap}", "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={_log4j2_config(settings)}",
            "-cp", classpath, main, *args]


@dataclass
class Kafka(Component):
    name: str = "kafka"

    def __post_init__(self) -> None:
        self.port = self.settings.kafka_port

    @property
    def data(self) -> Path:
        return self.settings.data_dir / "kafka"

    @property
    def properties(self) -> Path:
        return self.settings.run_dir / "kafka" / "server.properties"

    def prepare(self) -> None:
        controller = self.port + 1
        self.properties.parent.mkdir(parents=True, exist_ok=True)
        self.properties.write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller}",
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{controller}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            f"log.dirs={self.data}",
            f"num.partitions={self.settings.partitions}",
            # Topics are created on purpose (stack up, Faust, Connect, the registry), never by typo.
            "auto.create.topics.enable=false",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=8",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "group.initial.rebalance.delay.ms=0",
            "log.retention.hours=168",
            "log.segment.bytes=268435456",
            "",
        ]))
        if not (self.data / "meta.properties").exists():
            cluster_id = new_cluster_id()
            result = subprocess.run(
                _java_cmd(self.settings, "256m", self._classpath(), "kafka.tools.StorageTool",
                          "format", "-t", cluster_id, "-c", str(self.properties)),
                capture_output=True, text=True)
            if result.returncode != 0:
                raise StartError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")

    def _classpath(self) -> str:
        return str(self.settings.dist_dir / "kafka" / "libs" / "*")

    def command(self) -> list[str]:
        return _java_cmd(self.settings, "1g", self._classpath(), "kafka.Kafka", str(self.properties))

    def healthy(self) -> bool:
        from confluent_kafka.admin import AdminClient

        if not port_open(self.port):
            return False
        admin = AdminClient({"bootstrap.servers": self.settings.bootstrap_servers,
                             "socket.timeout.ms": 2000, "log_level": 0})
        metadata = admin.list_topics(timeout=3)
        return bool(metadata.brokers)


@dataclass
class Registry(Component):
    """Apicurio Registry 3.x, storage kafkasql: schemas live in a Kafka topic and survive restarts."""

    name: str = "registry"

    def __post_init__(self) -> None:
        self.port = self.settings.registry_port

    def command(self) -> list[str]:
        home = self.settings.dist_dir / "apicurio-registry"
        return [check_java(), "-Xms128m", "-Xmx512m", "-XX:+UseG1GC",
                f"-Dquarkus.http.port={self.port}", "-Dquarkus.http.host=127.0.0.1",
                "-Dapicurio.storage.kind=kafkasql",
                f"-Dapicurio.kafkasql.bootstrap.servers={self.settings.bootstrap_servers}",
                "-Dapicurio.kafkasql.topic=_schemas-journal",
                "-Dapicurio.kafkasql.snapshots.topic=_schemas-snapshots",
                f"-Dapicurio.storage.snapshot.location={self.settings.data_dir / 'registry'}",
                # Keep the Confluent API's ids equal to Apicurio content ids (what the converter reads).
                "-Dapicurio.ccompat.legacy-id-mode.enabled=false",
                # Look schemas up by canonical form, not byte-exact text (whitespace, key order).
                "-Dapicurio.ccompat.use-canonical-hash=true",
                "-Dquarkus.log.level=INFO",
                "-jar", str(home / "apicurio-registry-app-3.0.9-runner.jar")]

    def prepare(self) -> None:
        (self.settings.data_dir / "registry").mkdir(parents=True, exist_ok=True)

    def healthy(self) -> bool:
        base = f"http://127.0.0.1:{self.port}"
        return http_ok(f"{base}/health/ready") and http_ok(f"{base}/apis/ccompat/v7/subjects")


@dataclass
class Connect(Component):
    name: str = "connect"

    def __post_init__(self) -> None:
        self.port = self.settings.connect_port

    @property
    def properties(self) -> Path:
        return self.settings.run_dir / "connect" / "worker.properties"

    def prepare(self) -> None:
        self.properties.parent.mkdir(parents=True, exist_ok=True)
        self.properties.write_text(self.worker_properties())

    def worker_properties(self) -> str:
        return "\n".join([
            f"bootstrap.servers={self.settings.bootstrap_servers}",
            "group.id=notipipe-connect",
            "key.converter=org.apache.kafka.connect.storage.StringConverter",
            "value.converter=org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable=false",
            "config.storage.topic=_connect-configs",
            "offset.storage.topic=_connect-offsets",
            "status.storage.topic=_connect-status",
            "config.storage.replication.factor=1",
            "offset.storage.replication.factor=1",
            "status.storage.replication.factor=1",
            "offset.flush.interval.ms=1000",
            f"listeners=http://127.0.0.1:{self.port}",
            "rest.advertised.host.name=127.0.0.1",
            f"rest.advertised.port={self.port}",
            f"plugin.path={self.settings.dist_dir / 'connect-plugins'}",
            "plugin.discovery=hybrid_warn",
            # Sinks may create their own DLQ topics with one replica on this one-broker cluster.
            "topic.creation.enable=true",
            # Connector configs may read secrets (e.g. a gateway's API key) from the worker's
            # environment as ${env:NAME}, so they never sit in Connect's config topic.
            "config.providers=env",
            "config.providers.env.class=org.apache.kafka.common.config.provider.EnvVarConfigProvider",
            "",
        ])

    def restart_reason(self, changed_parts: list[str]) -> str | None:
        """Why a running Connect must restart to be current: new plugins or a new worker config."""
        plugins = [name for name in changed_parts if name in artifacts.CONNECT_PLUGIN_PARTS]
        if plugins:
            return "its jars changed: " + ", ".join(plugins)
        try:
            if self.properties.read_text() != self.worker_properties():
                return f"worker config {self.properties} changed"
        except FileNotFoundError:
            return None
        return None

    def command(self) -> list[str]:
        return _java_cmd(self.settings, "1g", str(self.settings.dist_dir / "kafka" / "libs" / "*"),
                         "org.apache.kafka.connect.cli.ConnectDistributed", str(self.properties))

    def healthy(self) -> bool:
        return http_ok(f"{self.settings.connect_url}/") and http_ok(
            f"{self.settings.connect_url}/connector-plugins")


def _postgres_bin() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    if not candidates:
        raise PrerequisiteError(
            "PostgreSQL server binaries not found: install Debian's server package "
            "(apt-get install postgresql), or run ./setup.sh which does it")
    return candidates[0].parent


@dataclass
class Postgres(Component):
    """PostgreSQL from Debian's packages, in a project-local data dir, listening on loopback only."""

    name: str = "postgres"

    def __post_init__(self) -> None:
        self.port = self.settings.postgres_port

    @property
    def data(self) -> Path:
        return self.settings.data_dir / "postgres"

    def _run_as(self) -> list[str]:
        # PostgreSQL refuses to run as root; Debian's package creates the `postgres` user.
        if os.geteuid() != 0:
            return []
        return ["runuser", "-u", "postgres", "--"]

    def _make_reachable(self, path: Path) -> None:
        """As root, let the postgres user reach a data dir below a private folder (e.g. mktemp)."""
        if os.geteuid() != 0:
            return
        user = pwd.getpwnam("postgres")
        path.mkdir(parents=True, exist_ok=True)
        for parent in reversed(path.parents):
            mode = parent.stat().st_mode
            if not mode & 0o001:
                parent.chmod(mode | 0o001)
        path.mkdir(parents=True, exist_ok=True)
        shutil.chown(path, user.pw_uid, user.pw_gid)
        path.chmod(0o700)

    def prepare(self) -> None:
        bin_dir = _postgres_bin()
        if (self.data / "PG_VERSION").exists():
            return
        self._make_reachable(self.data)
        self.data.mkdir(parents=True, exist_ok=True)
        pwfile = self.settings.run_dir / "pg-password"
        pwfile.parent.mkdir(parents=True, exist_ok=True)
        pwfile.write_text(self.settings.postgres_password + "\n")
        pwfile.chmod(0o644)
        result = subprocess.run(
            [*self._run_as(), str(bin_dir / "initdb"), "-D", str(self.data), "-U", "notipipe",
             "--auth-host=scram-sha-256", "--auth-local=trust", f"--pwfile={pwfile}",
             "-E", "UTF8", "--locale=C"],
            capture_output=True, text=True)
        pwfile.unlink()
        if result.returncode != 0:
            raise StartError(f"initdb failed:\n{result.stdout}{result.stderr}")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                       f"unix_socket_directories = '{self.data}'\n"
                       "max_connections = 100\nshared_buffers = 128MB\nfsync = on\n")

    def command(self) -> list[str]:
        return [*self._run_as(), str(_postgres_bin() / "postgres"), "-D", str(self.data)]

    def start(self) -> bool:
        started = super().start()
        self._ensure_database()
        return started

    def _ensure_database(self) -> None:
        psql = [*self._run_as(), str(_postgres_bin().parent / "bin" / "psql"), "-h", str(self.data),
                "-p", str(self.port), "-U", "notipipe", "-d", "postgres", "-tAc"]
        exists = subprocess.run([*psql, "SELECT 1 FROM pg_database WHERE datname='notipipe'"],
                                capture_output=True, text=True)
        if exists.stdout.strip() != "1":
            created = subprocess.run([*psql, "CREATE DATABASE notipipe"], capture_output=True, text=True)
            if created.returncode != 0:
                raise StartError(f"creating database notipipe failed: {created.stderr}")

    def healthy(self) -> bool:
        result = subprocess.run(
            [str(_postgres_bin() / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
            capture_output=True)
        return result.returncode == 0


@dataclass
class ProviderStub(Component):
    """The aiohttp stand-in for the email/SMS/push provider gateways."""

    name: str = "provider-stub"

    def __post_init__(self) -> None:
        self.port = self.settings.stub_port

    def command(self) -> list[str]:
        return [sys.executable, "-m", "stack.provider_stub", "--host", "127.0.0.1",
                "--port", str(self.port)]

    def env(self) -> dict[str, str]:
        root = str(Path(__file__).resolve().parent.parent)
        return {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}

    def healthy(self) -> bool:
        return http_ok(f"{self.settings.stub_url}/health")


@dataclass
class ConnectWatchdog(Component):
    """`notipipe connectors watch`: restarts sink tasks that failed on a lost connection
    (stack/connect_watchdog.py). No port: up is its process running."""

    name: str = "connect-watchdog"

    @property
    def address(self) -> str:
        return self.settings.connect_url

    def command(self) -> list[str]:
        return [sys.executable, "-m", "stack.connectors_cli", "watch"]

    def env(self) -> dict[str, str]:
        root = str(Path(__file__).resolve().parent.parent)
        return {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}

    def healthy(self) -> bool:
        return self.pid() is not None


@dataclass
class Worker(Component):
    """One router worker, for the quickstart; tests and benchmarks start their own."""

    name: str = "worker"

    def __post_init__(self) -> None:
        self.port = int(os.environ.get("NOTIPIPE_WEB_PORT") or 6066)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "streams.cli", "worker"]

    def env(self) -> dict[str, str]:
        root = str(Path(__file__).resolve().parent.parent)
        return {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}

    def health(self) -> dict | None:
        """The worker's /health report (streams/worker/progress.py); None if it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=3) as answer:
                return json.load(answer)
        except urllib.error.HTTPError as exc:  # 503: stalled, with the report as the body
            try:
                return json.load(exc)
            except ValueError:
                return None
        except (OSError, ValueError):
            return None

    def healthy(self) -> bool:
        report = self.health()
        return report is not None and report.get("state") != "stalled"

    def state(self) -> tuple[str, str]:
        """A process that answers may still route nothing: 'waiting' (for a dependency, on
        purpose) and 'stalled' (wedged: restart it) are told apart from 'up'."""
        if self.pid() is None:
            return "down", ""
        report = self.health()
        if report is None:
            return "down", "running, but /health does not answer"
        state = {"ok": "up"}.get(report.get("state", ""), report.get("state", "?"))
        return state, report.get("reason", "")


def all_components(settings: StackSettings, with_worker: bool = False) -> list[Component]:
    """In start order: each one's dependencies come before it. The worker is listed when asked
    for or when it runs, so `status` and `down` see it."""
    components: list[Component] = [Postgres(settings), Kafka(settings), Registry(settings),
                                   ProviderStub(settings), Connect(settings),
                                   ConnectWatchdog(settings)]
    worker = Worker(settings)
    if with_worker or worker.pid_file.exists():
        components.append(worker)
    return components


def describe(component: Component) -> dict[str, str]:
    if isinstance(component, Worker):
        state, detail = component.state()
    else:
        up = component.pid() is not None and component.healthy()
        state, detail = ("up" if up else "down"), ""
    row = {"name": component.name, "state": state, "address": component.address,
           "log": str(component.log_file)}
    if detail:
        row["detail"] = detail
    return row


def status_json(settings: StackSettings) -> str:
    return json.dumps([describe(c) for c in all_components(settings)])
