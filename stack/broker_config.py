"""The Kafka broker's server.properties: listeners, TLS, SASL/SCRAM and the authorizer.

Each node of the cluster is a `KafkaNode` (node id, host, client and controller ports); the local
stack runs one combined broker+controller node, or three (`NOTIPIPE_BROKERS=3`) sharing the
quorum's voter list, each with its own properties from `broker_properties(node, nodes, ...)`.

Replication (`Replication`): with three nodes every topic, the brokers' own (consumer offsets,
transactions) and those clients create (Faust's changelogs, Connect's, the registry's) included,
gets three replicas; a write is acknowledged once two have it (`min.insync.replicas=2`, with
`acks=all` on every producer), and a replica that missed writes never becomes leader
(`unclean.leader.election.enable=false`). One broker may be lost without losing or refusing a
write.

Listeners:
- `CLIENT` (SASL_SSL, SCRAM-SHA-512): every client, and the brokers among themselves (as the
  `broker` principal). TLS with the stack CA's certificate, host names verified.
- `CONTROLLER` (SSL with client certificates): the KRaft quorum, on loopback. SCRAM is not
  available between controllers, so the controller path authenticates by certificate: only a
  certificate signed by the stack's CA gets in, and its CN (`broker`) is its principal. No
  connection is anonymous there; an anonymous controller listener would let any local process
  create ACLs or SCRAM users through the controller (KIP-919 admin requests) as a super user.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stack.tls import BROKER_CN, TlsFiles
from streams.connection.kafka import KafkaAccess

CLIENT_LISTENER = "CLIENT"
CONTROLLER_LISTENER = "CONTROLLER"
MECHANISM = "SCRAM-SHA-512"
# The brokers' principal on both listeners: their SASL user, and their certificate's CN.
BROKER_USER = BROKER_CN
ADMIN_USER = "admin"
SUPER_USERS = (ADMIN_USER, BROKER_USER)
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"


@dataclass(frozen=True)
class Replication:
    factor: int = 1
    min_insync: int = 1

    def topic_config(self) -> dict[str, str]:
        """What every topic the stack creates carries explicitly (the brokers' defaults say the
        same, for topics clients create)."""
        return {"min.insync.replicas": str(self.min_insync),
                "unclean.leader.election.enable": "false"}


@dataclass(frozen=True)
class KafkaNode:
    node_id: int
    host: str
    client_port: int
    controller_port: int

    @property
    def client_address(self) -> str:
        return f"{self.host}:{self.client_port}"

    @property
    def voter(self) -> str:
        return f"{self.node_id}@{self.host}:{self.controller_port}"


def broker_properties(node: KafkaNode, nodes: list[KafkaNode], data_dir: Path, tls: TlsFiles,
                      broker_password: str, partitions: int,
                      replication: Replication | None = None) -> str:
    """server.properties of one combined broker+controller node. Holds the broker's password:
    written to a file only its owner reads."""
    # The broker's own client side of the CLIENT listener (to other brokers) as the `broker` user.
    replication = replication or Replication()
    inter_broker = KafkaAccess(node.client_address, "SASL_SSL", MECHANISM, BROKER_USER, broker_password)
    jaas = next(line for line in inter_broker.java_properties() if line.startswith("sasl.jaas.config="))
    client = CLIENT_LISTENER.lower()
    controller = CONTROLLER_LISTENER.lower()
    lines = [
        "process.roles=broker,controller",
        f"node.id={node.node_id}",
        "controller.quorum.voters=" + ",".join(n.voter for n in nodes),
        f"listeners={CLIENT_LISTENER}://{node.host}:{node.client_port},"
        f"{CONTROLLER_LISTENER}://{node.host}:{node.controller_port}",
        f"advertised.listeners={CLIENT_LISTENER}://{node.client_address}",
        f"controller.listener.names={CONTROLLER_LISTENER}",
        f"inter.broker.listener.name={CLIENT_LISTENER}",
        f"listener.security.protocol.map={CLIENT_LISTENER}:SASL_SSL,{CONTROLLER_LISTENER}:SSL",
        # TLS on both listeners: the broker's key and chain, and the CA it trusts (as a server
        # for client certificates, as a client for the other side's certificate).
        "ssl.keystore.type=PEM",
        f"ssl.keystore.location={tls.broker_pem}",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={tls.ca_cert}",
        "ssl.endpoint.identification.algorithm=https",
        # CLIENT: SCRAM only.
        f"sasl.enabled.mechanisms={MECHANISM}",
        f"sasl.mechanism.inter.broker.protocol={MECHANISM}",
        f"listener.name.{client}.sasl.enabled.mechanisms={MECHANISM}",
        f"listener.name.{client}.{MECHANISM.lower()}.{jaas}",
        # CONTROLLER: a certificate signed by the CA is required; its CN is the principal.
        f"listener.name.{controller}.ssl.client.auth=required",
        "ssl.principal.mapping.rules=RULE:^CN=([^,]+)$/$1/,DEFAULT",
        f"authorizer.class.name={AUTHORIZER}",
        "allow.everyone.if.no.acl.found=false",
        "super.users=" + ";".join(f"User:{user}" for user in SUPER_USERS),
        f"log.dirs={data_dir}",
        f"num.partitions={partitions}",
        # Topics are created on purpose (stack up, Faust, Connect, the registry), never by typo.
        "auto.create.topics.enable=false",
        # Replication of every topic, the brokers' own included (see the module's doc).
        f"default.replication.factor={replication.factor}",
        f"min.insync.replicas={replication.min_insync}",
        "unclean.leader.election.enable=false",
        f"offsets.topic.replication.factor={replication.factor}",
        "offsets.topic.num.partitions=8",
        f"transaction.state.log.replication.factor={replication.factor}",
        f"transaction.state.log.min.isr={replication.min_insync}",
        f"share.coordinator.state.topic.replication.factor={replication.factor}",
        f"share.coordinator.state.topic.min.isr={replication.min_insync}",
        "group.initial.rebalance.delay.ms=0",
        "log.retention.hours=168",
        "log.segment.bytes=268435456",
    ]
    return "\n".join(lines) + "\n"


def scram_bootstrap_args(passwords: dict[str, str]) -> list[str]:
    """`kafka-storage format` arguments that create the first SCRAM users with the storage, so
    the admin can log in before any ACL or user exists."""
    args: list[str] = []
    for user, password in sorted(passwords.items()):
        args += ["--add-scram", f"{MECHANISM}=[name={user},password={password}]"]
    return args
