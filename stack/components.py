"""The stack's components: how each is configured, started and health-checked."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from inbox.secret_files import TOKEN_SECRET, gateway_secret_name
from inbox.settings import InboxSettings
from stack import artifacts, secret_files
from stack.acls_setup import CONNECT_GROUP, CONNECT_INTERNAL_TOPICS, REGISTRY_GROUP_PREFIX, REGISTRY_TOPICS
from stack.artifacts import PrerequisiteError, check_java
from stack.broker_config import (
    BROKER_USER,
    SUPER_USERS,
    KafkaNode,
    Replication,
    broker_properties,
    scram_bootstrap_args,
)
from stack.jmx_agent import jmx_agent_answers, jmx_agent_args
from stack.kafka_access import service_access, stack_access, write_private
from stack.process import StartError, log_tail, read_pid, spawn, wait_until
from stack.secrets import secret, secrets_dir
from stack.settings import BROKER_JMX_PORT_STEP, BROKER_PORT_STEP, StackSettings
from stack.tls import TlsFiles, ensure_certificates
from streams.connection import postgres as pg_roles
from streams.connection.http import connect_client
from streams.connection.kafka import password_secret_name

# Where Linux's default ephemeral range starts (/proc/sys/net/ipv4/ip_local_port_range).
EPHEMERAL_LOW = 32768
# The name the provider stub reports receipts under (its secret: .cache/secrets/receipts-stub).
STUB_GATEWAY = "stub"


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def port_bindable(port: int, host: str = "127.0.0.1") -> bool:
    """Could a server listen on it now? False also when a client connection uses it as its local
    port (ports in the kernel's ephemeral range can be), which `port_open` does not see."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def http_ok(url: str, timeout_s: float = 3.0, headers: dict[str, str] | None = None) -> bool:
    try:
        request = urllib.request.Request(url, headers=headers or {})
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return 200 <= response.status < 300
    except OSError:
        return False


def worker_page(port: int, page: str, timeout_s: float = 5.0) -> dict | None:
    """A worker's JSON page (`health`, `counters`) on its web port; None while it does not
    answer. /health answers 503 with its report when the worker is stalled: that report too."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/{page}", timeout=timeout_s) as answer:
            return json.load(answer)
    except urllib.error.HTTPError as exc:
        try:
            return json.load(exc)
        except ValueError:
            return None
    except (OSError, ValueError):
        return None


@dataclass
class Component:
    """One process of the stack. Subclasses fill in command, health and address."""

    settings: StackSettings
    name: str = ""
    port: int = 0
    # Restart a running one on `stack up` when its command line changed (e.g. new auth options).
    restart_on_new_command = False

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

    @property
    def command_file(self) -> Path:
        return self.settings.run_dir / f"{self.name}.command"

    def config_files(self) -> list[Path]:
        """Files the process reads once, at start (written by command() or prepare())."""
        return []

    def started_with(self) -> str:
        """What the process reads at start: its command line and the content of its config files."""
        digests = [hashlib.sha256(path.read_bytes()).hexdigest() for path in self.config_files()]
        return json.dumps([*self.command(), *digests])

    def restart_reason(self, changed_parts: list[str]) -> str | None:
        """Why the running process must restart to be current; None if it is."""
        if not self.restart_on_new_command:
            return None
        try:
            recorded = self.command_file.read_text()
        except FileNotFoundError:
            return "it was started without a record of its command line"
        return None if recorded == self.started_with() else "its command line or config changed"

    def stopped(self) -> None:
        """Called by `stack down` once the process is gone."""

    def start(self) -> bool:
        """Start unless running; wait until healthy. True if it was started now."""
        if self.pid() is not None:
            self.wait_healthy()
            return False
        self.launch()
        self.wait_started()
        return True

    def launch(self) -> None:
        """Prepare and spawn the process, without waiting for it."""
        if port_open(self.port):
            raise StartError(
                f"{self.name}: port {self.port} is already taken by a process this stack did not "
                f"start (see `ss -ltnp 'sport = :{self.port}'`). Stop it, or choose another port "
                f"with the NOTIPIPE_*_PORT variables."
            )
        self.prepare()
        spawn(self.command(), self.log_file, self.pid_file, env=self.env())
        self.command_file.write_text(self.started_with())

    def wait_healthy(self) -> None:
        wait_until(self.healthy, self.settings.start_timeout_s, f"{self.name} to be healthy",
                   alive=lambda: self.pid() is not None)

    def wait_started(self) -> None:
        """`wait_healthy` for a process just launched: a failure shows the end of its log."""
        try:
            self.wait_healthy()
        except StartError as exc:
            raise StartError(f"{self.name} failed to start: {exc}\n"
                             f"  last lines of {self.log_file}:\n{log_tail(self.log_file)}") from None


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
        # Every operation the authorizer denies, with principal and resource (allowed ones: DEBUG).
        "logger.authorizer.name = kafka.authorizer.logger\nlogger.authorizer.level = INFO\n"
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


def _java_cmd(settings: StackSettings, heap: str, classpath: str, main: str, *args: str,
              jvm_options: list[str] | None = None) -> list[str]:
    return [check_java(), "-Xms128m", f"-Xmx{heap}", "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={_log4j2_config(settings)}", *(jvm_options or []),
            "-cp", classpath, main, *args]


def kafka_node_name(node_id: int) -> str:
    """Node 1 is `kafka` (its files where a one-broker stack has always kept them), node i `kafka-i`."""
    return "kafka" if node_id == 1 else f"kafka-{node_id}"


def kafka_node(settings: StackSettings, node_id: int) -> KafkaNode:
    port = settings.kafka_port + BROKER_PORT_STEP * (node_id - 1)
    return KafkaNode(node_id, "127.0.0.1", port, port + 1)


def kafka_nodes(settings: StackSettings) -> list[KafkaNode]:
    return [kafka_node(settings, node_id) for node_id in range(1, settings.brokers + 1)]


def _cluster_record(settings: StackSettings) -> Path:
    """Written when the first node's storage is formatted: how many nodes, and the cluster id
    the others are formatted with."""
    return settings.data_dir / "kafka.cluster"


def _read_record(settings: StackSettings) -> dict[str, str]:
    try:
        lines = _cluster_record(settings).read_text().splitlines()
    except FileNotFoundError:
        return {}
    return dict(line.split("=", 1) for line in lines if "=" in line)


def formatted_broker_count(settings: StackSettings) -> int | None:
    """How many nodes this stack's Kafka was made with; None before its first start."""
    record = _read_record(settings)
    if "nodes" in record:
        return int(record["nodes"])
    # Stacks made before the count was recorded had one node.
    return 1 if (settings.data_dir / "kafka" / "meta.properties").exists() else None


def check_broker_count(settings: StackSettings) -> None:
    made_with = formatted_broker_count(settings)
    if made_with is not None and made_with != settings.brokers:
        raise StartError(
            f"this stack's Kafka was made with {made_with} broker(s) and NOTIPIPE_BROKERS asks for "
            f"{settings.brokers}: a cluster's node count cannot change in place. Run `notipipe "
            f"stack reset` (it wipes the stack's topics and records) and `notipipe stack up` again, "
            f"or set NOTIPIPE_BROKERS={made_with}")


@dataclass
class Kafka(Component):
    """One node of the stack's Kafka cluster (NOTIPIPE_BROKERS of them): a combined
    broker+controller, SASL_SSL for clients, mutual TLS for the controller path, the standard
    authorizer (broker_config.py). Every node has its own data dir, ports and JMX agent."""

    name: str = "kafka"
    node_id: int = 1

    def __post_init__(self) -> None:
        self.name = kafka_node_name(self.node_id)
        self.port = self.node.client_port

    @property
    def node(self) -> KafkaNode:
        return kafka_node(self.settings, self.node_id)

    @property
    def jmx_port(self) -> int:
        return self.settings.kafka_jmx_port + BROKER_JMX_PORT_STEP * (self.node_id - 1)

    @property
    def data(self) -> Path:
        return self.settings.data_dir / self.name

    @property
    def properties(self) -> Path:
        return self.settings.run_dir / self.name / "server.properties"

    @property
    def _secured_marker(self) -> Path:
        return self.settings.data_dir / f"{self.name}.scram-formatted"

    def cluster(self) -> list[Kafka]:
        """Every node of the cluster this one belongs to, in node order."""
        return [Kafka(self.settings, node_id=node.node_id) for node in kafka_nodes(self.settings)]

    def prepare(self) -> None:
        check_broker_count(self.settings)
        for change in ensure_certificates(self.settings):
            print(f"  {change}", flush=True)
        passwords = {user: secret(self.settings, password_secret_name(user)) for user in SUPER_USERS}
        replication = Replication(self.settings.replication_factor, self.settings.min_insync_replicas)
        write_private(self.properties, broker_properties(
            self.node, kafka_nodes(self.settings), self.data, TlsFiles.of(self.settings),
            passwords[BROKER_USER], self.settings.partitions, replication))
        if (self.data / "meta.properties").exists():
            if not self._secured_marker.exists():
                raise StartError(
                    f"the Kafka data in {self.data} was formatted without SCRAM users, so nobody "
                    "could log in to the secured broker: wipe it with `notipipe stack reset` "
                    "(topics and their records are lost) and run `notipipe stack up` again")
            return
        self._format(passwords, self._cluster_id())

    def launch(self) -> None:
        # The JVM fails on a taken port with a stack trace; say which setting moves it instead.
        ports = {"client": self.node.client_port, "controller": self.node.controller_port}
        if self.settings.monitoring:
            ports["JMX agent"] = self.jmx_port
        taken = {what: port for what, port in ports.items() if not port_bindable(port)}
        if taken:
            raise StartError(
                f"{self.name}: " + ", ".join(f"its {what} port {port}" for what, port in taken.items())
                + " is in use by another socket (`ss -tanp | grep <port>` shows which). Choose "
                "free ports with NOTIPIPE_KAFKA_PORT and NOTIPIPE_KAFKA_JMX_PORT (broker i uses "
                "KAFKA_PORT + 2(i-1) and the port after, KAFKA_JMX_PORT + 10(i-1)); ports below "
                f"{EPHEMERAL_LOW} are never handed out by the kernel to client connections.")
        super().launch()

    def _cluster_id(self) -> str:
        """The cluster's id: recorded when its first node was formatted, else a new one."""
        record = _read_record(self.settings)
        if "cluster.id" in record:
            return record["cluster.id"]
        cluster_id = new_cluster_id()
        _cluster_record(self.settings).parent.mkdir(parents=True, exist_ok=True)
        _cluster_record(self.settings).write_text(
            f"nodes={self.settings.brokers}\ncluster.id={cluster_id}\n")
        return cluster_id

    def start(self) -> bool:
        """Start the node, and every other node of the cluster that is not running: a quorum of
        three elects no leader while only one voter runs, so no node is waited for before all
        are launched. Returns once this node is healthy and every broker has joined."""
        check_broker_count(self.settings)
        if self.pid() is not None and "sasl.enabled.mechanisms" not in self._running_config():
            raise StartError(
                "the running Kafka was started without TLS and SASL (before the stack was secured): "
                "stop the stack (`notipipe stack down`), wipe its data, which has no SCRAM users "
                "(`notipipe stack reset`), and run `notipipe stack up` again")
        started = self.pid() is None
        for node in self.cluster():
            if node.pid() is None:
                node.launch()
        if started:
            self.wait_started()
        else:
            self.wait_healthy()
        wanted = len(self.cluster())
        wait_until(lambda: len(self.live_brokers()) >= wanted, self.settings.start_timeout_s,
                   f"all {wanted} brokers to join the cluster", alive=lambda: self.pid() is not None)
        return started

    def _running_config(self) -> str:
        try:
            return self.properties.read_text()
        except FileNotFoundError:
            return ""

    def _format(self, passwords: dict[str, str], cluster_id: str) -> None:
        """Format the storage with the first SCRAM users (admin, broker). The arguments go through
        a private argument file, so the passwords never show in the process list."""
        args = [*_java_cmd(self.settings, "256m", self._classpath(), "kafka.tools.StorageTool",
                           "format", "-t", cluster_id, "-c", str(self.properties),
                           *scram_bootstrap_args(passwords))]
        argfile = self.settings.run_dir / self.name / "format.args"
        write_private(argfile, "\n".join(_argfile_quote(arg) for arg in args[1:]) + "\n")
        try:
            result = subprocess.run([args[0], f"@{argfile}"], capture_output=True, text=True)
        finally:
            argfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise StartError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")
        self._secured_marker.write_text("formatted with SCRAM users: " + ", ".join(sorted(passwords)) + "\n")

    def _classpath(self) -> str:
        return str(self.settings.dist_dir / "kafka" / "libs" / "*")

    def command(self) -> list[str]:
        return _java_cmd(self.settings, "1g", self._classpath(), "kafka.Kafka", str(self.properties),
                         jvm_options=jmx_agent_args(self.settings, "kafka", self.jmx_port))

    def monitoring_note(self) -> str | None:
        """Why the running broker exports no JMX metrics, if it does not."""
        running = self.pid() is not None
        if self.settings.monitoring and running and not jmx_agent_answers(self.jmx_port):
            return (f"note: the running {self.name} was started without the JMX exporter agent "
                    f"(port {self.jmx_port}); `notipipe stack down && notipipe stack up` adds it")
        return None

    def live_brokers(self) -> set[int]:
        """Node ids of the brokers this node's metadata lists as up (registered, not fenced)."""
        from confluent_kafka.admin import AdminClient

        access = stack_access(self.settings, "admin").at(self.address)
        admin = AdminClient({**access.confluent_config(), "socket.timeout.ms": 2000, "log_level": 0})
        return set(admin.list_topics(timeout=3).brokers)

    def healthy(self) -> bool:
        return port_open(self.port) and self.node_id in self.live_brokers()


def _argfile_quote(arg: str) -> str:
    """One argument of a `java @file` argument file."""
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class Registry(Component):
    """Apicurio Registry 3.x, storage kafkasql: schemas live in a Kafka topic and survive restarts."""

    name: str = "registry"
    restart_on_new_command = True

    def __post_init__(self) -> None:
        self.port = self.settings.registry_port

    @property
    def kafka_config(self) -> Path:
        return self.settings.run_dir / "registry" / "kafka.properties"

    def kafka_properties(self) -> str:
        """How the kafkasql storage reaches Kafka. Apicurio hands every `apicurio.kafka.common.*`
        key (prefix stripped) to its producer, consumer and admin client; they log in as the
        `registry` user. Holds its password: a file only its owner reads, not the command line."""
        access = service_access(self.settings, "registry")
        return "\n".join([
            f"apicurio.kafkasql.bootstrap.servers={self.settings.bootstrap_servers}",
            f"apicurio.kafkasql.topic={REGISTRY_TOPICS[0]}",
            f"apicurio.kafkasql.snapshots.topic={REGISTRY_TOPICS[1]}",
            f"apicurio.events.kafka.topic={REGISTRY_TOPICS[2]}",
            # Its consumers' groups (one per start, a UUID after the prefix): the registry's ACLs.
            f"apicurio.kafkasql.consumer.group-prefix={REGISTRY_GROUP_PREFIX}",
            *access.java_properties("apicurio.kafka.common."),
            "apicurio.kafkasql.producer.acks=all",
            "apicurio.kafkasql.producer.enable.idempotence=true",
            "",
        ])

    def command(self) -> list[str]:
        home = self.settings.dist_dir / "apicurio-registry"
        return [check_java(), "-Xms128m", "-Xmx512m", "-XX:+UseG1GC",
                f"-Dquarkus.http.port={self.port}", "-Dquarkus.http.host=127.0.0.1",
                # Writes need a user with a role (stack/secret_files.py); reads stay anonymous: the
                # worker, the SDK and Connect's Avro converter only look schemas up.
                "-Dquarkus.http.auth.basic=true",
                # Two private files: the users (with their roles) and the kafkasql clients' login.
                "-Dquarkus.config.locations=" + ",".join(
                    path.as_uri() for path in (secret_files.registry_users(self.settings),
                                               self.kafka_config)),
                "-Dapicurio.auth.role-based-authorization=true",
                "-Dapicurio.auth.role-source=token",
                "-Dapicurio.auth.anonymous-read-access.enabled=true",
                "-Dapicurio.storage.kind=kafkasql",
                f"-Dapicurio.storage.snapshot.location={self.settings.data_dir / 'registry'}",
                # Keep the Confluent API's ids equal to Apicurio content ids (what the converter reads).
                "-Dapicurio.ccompat.legacy-id-mode.enabled=false",
                # Look schemas up by canonical form, not byte-exact text (whitespace, key order).
                "-Dapicurio.ccompat.use-canonical-hash=true",
                "-Dquarkus.log.level=INFO",
                "-jar", str(home / "apicurio-registry-app-3.0.9-runner.jar")]

    def prepare(self) -> None:
        (self.settings.data_dir / "registry").mkdir(parents=True, exist_ok=True)
        write_private(self.kafka_config, self.kafka_properties())

    def config_files(self) -> list[Path]:
        return [secret_files.registry_users(self.settings), self.kafka_config]

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
        write_private(self.properties, self.worker_properties())
        secret_files.connector_secrets(self.settings)

    def worker_properties(self) -> str:
        """Connect's config. It holds the `connect` user's password, for the worker's own clients
        and those it makes for connectors (`producer.`: sink DLQs; `consumer.`: sink tasks;
        `admin.`): a file only its owner reads."""
        access = service_access(self.settings, "connect")
        return "\n".join([
            f"bootstrap.servers={self.settings.bootstrap_servers}",
            *access.java_properties(),
            *(line for prefix in ("producer.", "consumer.", "admin.")
              for line in access.java_properties(prefix)),
            # The producers of its connectors (the sinks' DLQ writers): every write acknowledged
            # by the in-sync replicas, a retried batch not written twice (Connect turns
            # idempotence off unless told).
            "producer.acks=all",
            "producer.enable.idempotence=true",
            # Its own producers of the config, offset and status topics read the unprefixed
            # settings: acks=all. Kafka forces idempotence off for them; their records are keyed
            # and compacted, so a duplicate is harmless.
            "acks=all",
            f"group.id={CONNECT_GROUP}",
            "key.converter=org.apache.kafka.connect.storage.StringConverter",
            "value.converter=org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable=false",
            f"config.storage.topic={CONNECT_INTERNAL_TOPICS[0]}",
            f"offset.storage.topic={CONNECT_INTERNAL_TOPICS[1]}",
            f"status.storage.topic={CONNECT_INTERNAL_TOPICS[2]}",
            f"config.storage.replication.factor={self.settings.replication_factor}",
            f"offset.storage.replication.factor={self.settings.replication_factor}",
            f"status.storage.replication.factor={self.settings.replication_factor}",
            "offset.flush.interval.ms=1000",
            f"listeners=http://127.0.0.1:{self.port}",
            "rest.advertised.host.name=127.0.0.1",
            f"rest.advertised.port={self.port}",
            f"plugin.path={self.settings.dist_dir / 'connect-plugins'}",
            "plugin.discovery=hybrid_warn",
            # Sinks may create their own DLQ topics (`stack up` makes the pipeline's, replicated
            # as the cluster's topics are; errors.deadletterqueue.topic.replication.factor).
            "topic.creation.enable=true",
            # Connector configs read secrets through config providers, so they never sit in
            # Connect's config topic or its REST answers: ${file:<path>:<key>} from the stack's
            # connector-secrets.properties (stack/secret_files.py), ${env:NAME} from its environment.
            "config.providers=file,env",
            "config.providers.file.class=org.apache.kafka.common.config.provider.FileConfigProvider",
            f"config.providers.file.param.allowed.paths={secrets_dir(self.settings)}",
            "config.providers.env.class=org.apache.kafka.common.config.provider.EnvVarConfigProvider",
            # The REST API asks every caller for a user and password (JAAS section KafkaConnect,
            # file named by -Djava.security.auth.login.config in command()).
            "rest.extension.classes="
            "org.apache.kafka.connect.rest.basic.auth.extension.BasicAuthSecurityRestExtension",
            "",
        ])

    def restart_reason(self, changed_parts: list[str]) -> str | None:
        """Why a running Connect must restart to be current: new plugins or a new worker config."""
        plugins = [name for name in changed_parts if name in artifacts.CONNECT_PLUGIN_PARTS]
        if plugins:
            return "its jars changed: " + ", ".join(plugins)
        if self.settings.monitoring and not jmx_agent_answers(self.settings.connect_jmx_port):
            return f"its JMX exporter agent does not answer on port {self.settings.connect_jmx_port}"
        try:
            if self.properties.read_text() != self.worker_properties():
                return f"worker config {self.properties} changed"
            if self.command_file.read_text() != self.started_with():
                return "its REST credentials changed"
        except FileNotFoundError:
            return None
        return None

    def config_files(self) -> list[Path]:
        secret_files.connect_jaas(self.settings)
        return [secrets_dir(self.settings) / "connect-credentials.properties"]

    def command(self) -> list[str]:
        jaas = f"-Djava.security.auth.login.config={secret_files.connect_jaas(self.settings)}"
        return _java_cmd(self.settings, "1g", str(self.settings.dist_dir / "kafka" / "libs" / "*"),
                         "org.apache.kafka.connect.cli.ConnectDistributed", str(self.properties),
                         jvm_options=[jaas, *jmx_agent_args(self.settings, "connect",
                                                                 self.settings.connect_jmx_port)])

    def healthy(self) -> bool:
        auth = {"Authorization": connect_client(self.settings).header()}
        return http_ok(f"{self.settings.connect_url}/", headers=auth) and http_ok(
            f"{self.settings.connect_url}/connector-plugins", headers=auth)


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
        # The owner's password, for initdb only: readable by the server's user alone, gone after.
        pwfile = self.settings.run_dir / "pg-password"
        pwfile.parent.mkdir(parents=True, exist_ok=True)
        secret_files.write_private(pwfile, pg_roles.password(self.settings, pg_roles.OWNER) + "\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres", "postgres")
        try:
            result = subprocess.run(
                [*self._run_as(), str(bin_dir / "initdb"), "-D", str(self.data), "-U", pg_roles.OWNER.name,
                 "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C"],
                capture_output=True, text=True)
        finally:
            pwfile.unlink()
        if result.returncode != 0:
            raise StartError(f"initdb failed:\n{result.stdout}{result.stderr}")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                       f"unix_socket_directories = '{self.data}'\n"
                       "max_connections = 100\nshared_buffers = 128MB\nfsync = on\n")
        self._quiet_error_logging()

    def _quiet_error_logging(self) -> bool:
        """Keep row values out of the server log: no DETAIL lines (a constraint violation's
        "Failing row contains (...)"), no text of failing statements. True if changed."""
        conf = self.data / "postgresql.conf"
        text = conf.read_text()
        if re.search(r"^\s*log_error_verbosity\s*=", text, re.M):
            return False
        conf.write_text(text + "log_error_verbosity = terse\nlog_min_error_statement = panic\n")
        return True

    def command(self) -> list[str]:
        return [*self._run_as(), str(_postgres_bin() / "postgres"), "-D", str(self.data)]

    def start(self) -> bool:
        started = super().start()
        self._require_passwords()
        self._ensure_database()
        return started

    def _require_passwords(self) -> None:
        """A data dir from before passwords were required (local connections trusted): give the
        owner its password, then require it on every connection. Runs once per such data dir."""
        hba = self.data / "pg_hba.conf"
        lines = hba.read_text().splitlines()
        trusting = [i for i, line in enumerate(lines)
                    if line.strip() and not line.lstrip().startswith("#") and line.split()[-1] == "trust"]
        log_settings_added = self._quiet_error_logging()
        if not trusting and not log_settings_added:
            return
        owner = pg_roles.OWNER.name
        password = pg_roles.password(self.settings, pg_roles.OWNER)
        # Over the server's own socket: trusted still, or (only the log settings changed) as any client.
        with psycopg.connect(host=str(self.data), port=self.port, dbname="postgres", user=owner,
                             password=password, autocommit=True) as conn:
            if trusting:
                verifier = conn.pgconn.encrypt_password(password.encode(), owner.encode(), b"scram-sha-256")
                conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(owner), sql.Literal(verifier.decode())))
                for i in trusting:
                    lines[i] = lines[i].rsplit(None, 1)[0] + " scram-sha-256"
                hba.write_text("\n".join(lines) + "\n")
            conn.execute("SELECT pg_reload_conf()")

    def _ensure_database(self) -> None:
        owner_dsn = make_conninfo(pg_roles.dsn(self.settings, pg_roles.OWNER), dbname="postgres")
        try:
            with psycopg.connect(owner_dsn, autocommit=True) as conn:
                if conn.execute("SELECT 1 FROM pg_database WHERE datname = 'notipipe'").fetchone():
                    return
                conn.execute("CREATE DATABASE notipipe")
        except psycopg.OperationalError as exc:
            raise StartError(
                f"PostgreSQL refused the owner role ({exc}). Its password is NOTIPIPE_POSTGRES_PASSWORD "
                f"or {secrets_dir(self.settings) / pg_roles.OWNER.password.secret_name}, as when the "
                "data dir was made; `notipipe stack reset` starts afresh") from None

    def healthy(self) -> bool:
        result = subprocess.run(
            [str(_postgres_bin() / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
            capture_output=True)
        return result.returncode == 0


@dataclass
class InboxService(Component):
    """One instance of the inbox service (`notipipe inbox serve`) on this stack's pipeline."""

    name: str = "inbox"

    def __post_init__(self) -> None:
        self.port = InboxSettings.from_env().port

    def prepare(self) -> None:
        for name in (TOKEN_SECRET, gateway_secret_name(STUB_GATEWAY)):
            secret(self.settings, name)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "streams.cli", "inbox", "serve"]

    def env(self) -> dict[str, str]:
        root = str(Path(__file__).resolve().parent.parent)
        return {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", ""),
                "NOTIPIPE_BOOTSTRAP_SERVERS": self.settings.bootstrap_servers,
                "NOTIPIPE_REGISTRY_URL": self.settings.registry_url,
                "NOTIPIPE_TOPIC_PREFIX": self.settings.topic_prefix,
                "NOTIPIPE_INBOX_PORT": str(self.port),
                # The reader role: SELECT on the inbox, UPDATE of its read_at and archived_at.
                "NOTIPIPE_INBOX_POSTGRES_DSN": os.environ.get("NOTIPIPE_INBOX_POSTGRES_DSN")
                or pg_roles.dsn(self.settings, pg_roles.READER),
                "NOTIPIPE_INBOX_SECRETS_DIR": str(secrets_dir(self.settings))}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        return http_ok(f"{self.url}/health")


@dataclass
class ProviderStub(Component):
    """The aiohttp stand-in for the email/SMS/push provider gateways; it reports receipts to the
    stack's inbox service as the gateway `stub`."""

    name: str = "provider-stub"
    restart_on_new_command = True

    def __post_init__(self) -> None:
        self.port = self.settings.stub_port

    def prepare(self) -> None:
        secret(self.settings, gateway_secret_name(STUB_GATEWAY))

    def command(self) -> list[str]:
        # Like a real gateway, it answers 401 to a request without its channel's token, and it
        # reports what became of each send to the inbox service's receipt webhook.
        inbox = InboxService(self.settings)
        return [sys.executable, "-m", "stack.provider_stub", "--host", "127.0.0.1",
                "--port", str(self.port), "--tokens-file", str(secret_files.gateway_tokens(self.settings)),
                "--gateway", STUB_GATEWAY,
                "--receipts-url", f"{inbox.url}/v1/receipts/{STUB_GATEWAY}",
                "--receipts-secret-file",
                str(secrets_dir(self.settings) / gateway_secret_name(STUB_GATEWAY))]

    def config_files(self) -> list[Path]:
        return [secret_files.gateway_tokens(self.settings)]

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
        # This stack's Kafka and registry unless the environment names others.
        return {"NOTIPIPE_BOOTSTRAP_SERVERS": self.settings.bootstrap_servers,
                "NOTIPIPE_REGISTRY_URL": self.settings.registry_url, **os.environ,
                "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}

    def health(self) -> dict | None:
        """The worker's /health report (streams/worker/progress.py); None if it does not answer."""
        return worker_page(self.port, "health", timeout_s=3)

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

    def start(self) -> bool:
        from monitoring.targets import list_worker

        started = super().start()
        # Listed for Prometheus while it runs; `stack down` de-lists it, a crash leaves it listed.
        app_id = os.environ.get("NOTIPIPE_APP_ID") or "notipipe-router"
        list_worker(self.settings, self.name, self.port, app_id)
        return started

    def stopped(self) -> None:
        from monitoring.targets import delist_worker

        delist_worker(self.settings, self.name)


def all_components(settings: StackSettings, with_worker: bool = False) -> list[Component]:
    """In start order: each one's dependencies come before it. The worker is listed when asked
    for or when it runs, so `status` and `down` see it."""
    from stack.monitoring_components import monitoring_components

    components: list[Component] = [Postgres(settings), *kafka_components(settings), Registry(settings),
                                   InboxService(settings), ProviderStub(settings), Connect(settings),
                                   ConnectWatchdog(settings), *monitoring_components(settings)]
    worker = Worker(settings)
    if with_worker or worker.pid_file.exists():
        components.append(worker)
    return components


def kafka_components(settings: StackSettings) -> list[Kafka]:
    """The cluster's nodes; with more made than NOTIPIPE_BROKERS says, all of them, so that
    `status` and `down` see every node (`up` refuses the mismatch)."""
    count = max(settings.brokers, formatted_broker_count(settings) or 0)
    return [Kafka(settings, node_id=node_id) for node_id in range(1, count + 1)]


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
