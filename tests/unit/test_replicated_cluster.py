"""NOTIPIPE_BROKERS=3, as configuration: three KRaft nodes with their own ports, data and JMX
agents; replication factor 3, two in-sync replicas and no unclean election for every topic the
stack, Connect, the registry and the worker make (the cluster losing a broker for real:
tests/integration/test_broker_faults.py)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from monitoring.prometheus_config import prometheus_config
from monitoring.settings import MonitoringSettings
from stack.acls_setup import REGISTRY_TOPICS
from stack.broker_config import Replication, broker_properties
from stack.components import Connect, Kafka, check_broker_count, kafka_components, kafka_nodes
from stack.connectors_setup import placeholders
from stack.process import StartError, spawn, stop_together
from stack.settings import ConfigError, StackSettings
from stack.tls import TlsFiles
from stack.topics_setup import registry_topics, topic_config
from streams.contracts.topics import Topics
from tests.waiting import wait_for


def _properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


def _stack(tmp_path: Path, **env: str) -> StackSettings:
    variables = {f"NOTIPIPE_{name}": value for name, value in env.items()}
    return StackSettings.from_env({"NOTIPIPE_HOME": str(tmp_path), **variables})


def test_one_broker_by_default_three_on_demand(tmp_path: Path) -> None:
    single = _stack(tmp_path)
    assert (single.brokers, single.replication_factor, single.min_insync_replicas) == (1, 1, 1)
    assert single.bootstrap_servers == "127.0.0.1:9092"
    three = _stack(tmp_path, BROKERS="3", KAFKA_PORT="29092", KAFKA_JMX_PORT="29404")
    assert (three.replication_factor, three.min_insync_replicas) == (3, 2)
    # Every broker: a client starting while one is down bootstraps from another.
    assert three.bootstrap_servers == "127.0.0.1:29092,127.0.0.1:29094,127.0.0.1:29096"
    assert [n.voter for n in kafka_nodes(three)] == [
        "1@127.0.0.1:29093", "2@127.0.0.1:29095", "3@127.0.0.1:29097"]
    assert three.kafka_jmx_ports == [29404, 29414, 29424]


@pytest.mark.parametrize(("count", "why"), [("2", "quorum of two"), ("5", "1 or 3"), ("0", "1 or 3")])
def test_other_broker_counts_are_refused(tmp_path: Path, count: str, why: str) -> None:
    with pytest.raises(ConfigError, match=f"NOTIPIPE_BROKERS.*{why}"):
        _stack(tmp_path, BROKERS=count)


def test_a_brokers_port_may_not_be_another_components(tmp_path: Path) -> None:
    """Broker 2 of 3 listens on KAFKA_PORT + 2: not where the registry is."""
    with pytest.raises(ConfigError, match="NOTIPIPE_KAFKA_PORT.*NOTIPIPE_REGISTRY_PORT.*29094"):
        _stack(tmp_path, BROKERS="3", KAFKA_PORT="29092", REGISTRY_PORT="29094")
    with pytest.raises(ConfigError, match="NOTIPIPE_CONNECT_JMX_PORT.*NOTIPIPE_KAFKA_JMX_PORT"):
        _stack(tmp_path, BROKERS="3", KAFKA_JMX_PORT="29404", CONNECT_JMX_PORT="29414")
    _stack(tmp_path, BROKERS="1", KAFKA_JMX_PORT="29404", CONNECT_JMX_PORT="29414")  # one broker: free


def test_each_node_has_its_own_name_ports_data_and_jmx_agent(tmp_path: Path) -> None:
    nodes = kafka_components(_stack(tmp_path, BROKERS="3", KAFKA_PORT="29092", KAFKA_JMX_PORT="29404"))
    assert [(k.name, k.port, k.node.controller_port, k.jmx_port) for k in nodes] == [
        ("kafka", 29092, 29093, 29404), ("kafka-2", 29094, 29095, 29414), ("kafka-3", 29096, 29097, 29424)]
    for attribute in ("data", "properties", "pid_file", "log_file"):
        assert len({getattr(k, attribute) for k in nodes}) == 3, attribute
    # Node 1 keeps a one-broker stack's files where they always were.
    assert nodes[0].data == tmp_path / ".cache" / "data" / "kafka"


def test_the_brokers_replicate_every_topic_three_times_with_two_in_sync(tmp_path: Path) -> None:
    settings = _stack(tmp_path, BROKERS="3")
    nodes = kafka_nodes(settings)
    props = _properties(broker_properties(nodes[2], nodes, tmp_path, TlsFiles.of(settings), "pw", 8,
                                          Replication(3, 2)))
    # Topics clients create (Faust's changelogs, Connect's, the registry's) and the brokers' own.
    assert (props["default.replication.factor"], props["min.insync.replicas"]) == ("3", "2")
    assert props["unclean.leader.election.enable"] == "false"
    assert props["offsets.topic.replication.factor"] == "3"
    transactions = "transaction.state.log."
    assert (props[transactions + "replication.factor"], props[transactions + "min.isr"]) == ("3", "2")
    single = _properties(broker_properties(nodes[0], nodes[:1], tmp_path, TlsFiles.of(settings), "pw", 8))
    assert (single["default.replication.factor"], single["min.insync.replicas"]) == ("1", "1")


def test_the_stacks_topics_carry_the_replication_themselves(tmp_path: Path) -> None:
    replicated = Replication(3, 2)
    for spec in Topics("").specs():
        config = topic_config(spec, replicated)
        assert (config["min.insync.replicas"], config["unclean.leader.election.enable"]) == ("2", "false")
    made = registry_topics(_stack(tmp_path, BROKERS="3"))
    assert [(t.topic, t.replication_factor, t.num_partitions) for t in made] == [
        (name, 3, 1) for name in REGISTRY_TOPICS]
    assert made[0].config["min.insync.replicas"] == "2"


def test_connect_replicates_its_topics_and_its_sinks_dlqs(tmp_path: Path) -> None:
    settings = _stack(tmp_path, BROKERS="3")
    worker = _properties(Connect(settings).worker_properties())
    assert {worker[f"{t}.storage.replication.factor"] for t in ("config", "offset", "status")} == {"3"}
    assert placeholders(settings, {})["DLQ_REPLICATION_FACTOR"] == "3"
    assert placeholders(_stack(tmp_path), {})["DLQ_REPLICATION_FACTOR"] == "1"


def test_prometheus_scrapes_every_brokers_jmx_agent(tmp_path: Path) -> None:
    settings = _stack(tmp_path, BROKERS="3", KAFKA_JMX_PORT="29404")
    config = prometheus_config(settings, MonitoringSettings())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["kafka"]["static_configs"][0]["targets"] == [
        "127.0.0.1:29404", "127.0.0.1:29414", "127.0.0.1:29424"]


def test_a_stack_keeps_the_broker_count_it_was_made_with(tmp_path: Path) -> None:
    one = _stack(tmp_path)
    (one.data_dir / "kafka").mkdir(parents=True)
    (one.data_dir / "kafka" / "meta.properties").write_text("node.id=1\n")  # made before the count was kept
    check_broker_count(one)
    with pytest.raises(StartError, match=r"made with 1 broker\(s\).*asks for 3.*stack reset"):
        check_broker_count(_stack(tmp_path, BROKERS="3"))
    (one.data_dir / "kafka.cluster").write_text("nodes=3\ncluster.id=abc\n")
    with pytest.raises(StartError, match=r"made with 3 broker\(s\).*asks for 1"):
        Kafka(one).start()
    # `status` and `down` still see every node it has.
    assert [k.name for k in kafka_components(one)] == ["kafka", "kafka-2", "kafka-3"]


def test_a_node_whose_port_another_socket_holds_is_not_started(tmp_path: Path) -> None:
    """A client connection may hold a port of the kernel's ephemeral range as its local port; the
    broker's JVM would die with a stack trace, the stack names the setting instead."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        settings = _stack(tmp_path, BROKERS="3", KAFKA_PORT=str(port - 2), MONITORING="0")
        refusal = f"kafka-2: its client port {port} is in use.*NOTIPIPE_KAFKA_PORT"
        with pytest.raises(StartError, match=refusal):
            Kafka(settings, node_id=2).launch()
    assert not Kafka(settings, node_id=2).pid_file.exists()


QUORUM_MEMBER = """
import pathlib, signal, sys, time
me, other = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
def leave(*_):
    me.with_suffix(".leaving").touch()
    # Like a KRaft node: it finishes its shutdown only while another member still answers.
    while not other.with_suffix(".leaving").exists():
        time.sleep(0.05)
    me.with_suffix(".clean").touch()
    sys.exit(0)
signal.signal(signal.SIGTERM, leave)
me.with_suffix(".ready").touch()
while True:
    time.sleep(0.05)
"""


def test_the_nodes_of_a_quorum_are_stopped_together(tmp_path: Path) -> None:
    """Stopped one by one, the last node could not finish its shutdown and would be killed."""
    script = tmp_path / "member.py"
    script.write_text(QUORUM_MEMBER)
    a, b = tmp_path / "a", tmp_path / "b"
    pid_files = []
    for me, other in ((a, b), (b, a)):
        pid_file = tmp_path / f"{me.name}.pid"
        spawn([sys.executable, str(script), str(me), str(other)], tmp_path / f"{me.name}.log", pid_file)
        pid_files.append(pid_file)
    wait_for(lambda: a.with_suffix(".ready").exists() and b.with_suffix(".ready").exists(), 30,
             "both members running")
    assert stop_together(pid_files, timeout_s=20) == [True, True]
    assert a.with_suffix(".clean").exists() and b.with_suffix(".clean").exists()
