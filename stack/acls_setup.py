"""Kafka principals and their ACLs, least privilege; created by `notipipe stack up`, idempotently.

Every process logs in as one of these SCRAM users (its *role*); the broker's authorizer denies
whatever no ACL allows (`allow.everyone.if.no.acl.found=false`). `admin` and `broker` are super
users: the first is created when the storage is formatted and is used only by the stack's own
provisioning and by test observers; `broker` is the brokers' own principal. The other users are
created here through the admin API, with the passwords the stack generated for them.

ACLs on pipeline topics are per topic prefix (`NOTIPIPE_TOPIC_PREFIX`), the worker's per app id
(`NOTIPIPE_APP_ID`): `ensure_acls(replace(settings, topic_prefix=..., app_id=...))` gives a
prefixed pipeline (a test module's, a benchmark's) its own, as `ensure_topics` gives it its topics.
The table in docs/security.md is this module in words.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from stack.kafka_access import stack_access
from stack.secrets import secret, secrets_dir
from stack.settings import StackSettings
from streams.connection.kafka import password_secret_name
from streams.contracts.topics import CHANNELS, SINK_FAMILIES, Topics

# SCRAM users made through the admin API (admin and broker come with the storage format).
ROLES = ("producer", "worker", "connect", "ops", "monitoring", "registry", "inbox")
SCRAM_ITERATIONS = 4096  # Kafka's minimum for SCRAM-SHA-512; each client login computes them

CONNECT_GROUP = "notipipe-connect"
CONNECT_INTERNAL_TOPICS = ("_connect-configs", "_connect-offsets", "_connect-status")
CONNECT_SINK_GROUP_PREFIX = "connect-"  # Connect names a sink's consumer group connect-<connector>
REGISTRY_TOPICS = ("_schemas-journal", "_schemas-snapshots", "_schemas-events")  # kafkasql: journal,
# snapshots, and the change events Apicurio publishes
REGISTRY_GROUP_PREFIX = "notipipe-registry-"
INBOX_GROUP_PREFIX = "notipipe-inbox-"
OPS_GROUP_PREFIXES = ("notipipe-dlq-replay.", "notipipe-tail-", "notipipe-demo-", "notipipe-ops-")

TOPIC, GROUP, CLUSTER = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.BROKER
LITERAL, PREFIXED = ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED
Op = AclOperation


@dataclass(frozen=True)
class Grant:
    """One ACL: `role` may do `operation` on resources named `name` (exactly, or starting with it)."""

    role: str
    operation: AclOperation
    resource: ResourceType
    name: str
    pattern: ResourcePatternType = LITERAL

    def binding(self) -> AclBinding:
        return AclBinding(self.resource, self.name, self.pattern, f"User:{self.role}", "*",
                          self.operation, AclPermissionType.ALLOW)

    def describe(self) -> str:
        how = "prefix " if self.pattern == PREFIXED else ""
        kind = "cluster" if self.resource == CLUSTER else self.resource.name.lower()  # librdkafka: BROKER
        return f"{self.role}: {self.operation.name} on {kind} {how}{self.name!r}"


def pipeline_grants(prefix: str, app_id: str) -> list[Grant]:
    """The ACLs of one pipeline: its topic prefix and its workers' app id."""
    topics = Topics(prefix)
    events, preferences, dlq = topics.events, topics.preferences, topics.dlq
    deliveries = topics.deliveries("")  # every channel's topic starts with it
    sink_dlqs = topics.sink_dlq("")
    assert all(topics.deliveries(ch).startswith(deliveries) for ch in CHANNELS)
    assert all(topics.sink_dlq(family).startswith(sink_dlqs) for family in SINK_FAMILIES)
    return [
        # Services publishing notifications and preferences.
        Grant("producer", Op.WRITE, TOPIC, events),
        Grant("producer", Op.WRITE, TOPIC, preferences),
        # The SDK reads the topics' max.message.bytes to refuse an oversized record up front.
        Grant("producer", Op.DESCRIBE_CONFIGS, TOPIC, events),
        Grant("producer", Op.DESCRIBE_CONFIGS, TOPIC, preferences),
        # The router: its inputs, its outputs, and everything named after its app id (its consumer
        # group, the offsets probe's group, changelogs, ticks, Faust's assignor topic).
        Grant("worker", Op.READ, TOPIC, events),
        Grant("worker", Op.READ, TOPIC, preferences),
        Grant("worker", Op.READ, TOPIC, topics.receipts),
        Grant("worker", Op.WRITE, TOPIC, deliveries, PREFIXED),
        Grant("worker", Op.WRITE, TOPIC, dlq),
        Grant("worker", Op.ALL, TOPIC, app_id, PREFIXED),
        Grant("worker", Op.ALL, GROUP, app_id, PREFIXED),
        # Kafka Connect's sinks read the deliveries and dead-letter what they cannot deliver (the
        # sink DLQ topics are made by `stack up`, so Connect needs no CREATE).
        Grant("connect", Op.READ, TOPIC, deliveries, PREFIXED),
        Grant("connect", Op.READ, TOPIC, topics.receipts),  # the receipts sink (delivery status)
        Grant("connect", Op.WRITE, TOPIC, sink_dlqs, PREFIXED),
        # Operators: read the dead letters and the deliveries (replay, `notipipe tail`), write
        # the delivery topics only to replay a sink's dead letters to where they came from.
        Grant("ops", Op.READ, TOPIC, dlq),
        Grant("ops", Op.READ, TOPIC, sink_dlqs, PREFIXED),
        Grant("ops", Op.READ, TOPIC, deliveries, PREFIXED),
        Grant("ops", Op.WRITE, TOPIC, deliveries, PREFIXED),
        # The inbox service: the in-app deliveries for its live feed, the receipts it is sent.
        Grant("inbox", Op.READ, TOPIC, topics.deliveries("in_app")),
        Grant("inbox", Op.WRITE, TOPIC, topics.receipts),
    ]


def shared_grants() -> list[Grant]:
    """ACLs every pipeline shares: Connect's and the registry's own topics and groups,
    operators' and monitoring's groups."""
    return [
        *(Grant("connect", Op.ALL, TOPIC, topic) for topic in CONNECT_INTERNAL_TOPICS),
        Grant("connect", Op.ALL, GROUP, CONNECT_GROUP),
        Grant("connect", Op.READ, GROUP, CONNECT_SINK_GROUP_PREFIX, PREFIXED),
        *(Grant("registry", Op.ALL, TOPIC, topic) for topic in REGISTRY_TOPICS),
        Grant("registry", Op.ALL, GROUP, REGISTRY_GROUP_PREFIX, PREFIXED),
        *(Grant("ops", Op.READ, GROUP, group, PREFIXED) for group in OPS_GROUP_PREFIXES),
        # Its feed consumers are assigned partitions; librdkafka still names a group for them.
        Grant("inbox", Op.READ, GROUP, INBOX_GROUP_PREFIX, PREFIXED),
        # A consumer-lag exporter: topics' end offsets and groups' committed offsets, no records.
        Grant("monitoring", Op.DESCRIBE, TOPIC, "*"),
        Grant("monitoring", Op.DESCRIBE, GROUP, "*"),
        Grant("monitoring", Op.DESCRIBE, CLUSTER, "kafka-cluster"),
    ]


def grants(settings: StackSettings) -> list[Grant]:
    return [*shared_grants(), *pipeline_grants(settings.topic_prefix, settings.app_id)]


def _admin(settings: StackSettings) -> AdminClient:
    return AdminClient({**stack_access(settings, "admin").confluent_config(), "log_level": 0})


def _existing(admin: AdminClient) -> set[AclBinding]:
    every = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                             AclOperation.ANY, AclPermissionType.ANY)
    return set(admin.describe_acls(every).result(30))


def ensure_acls(settings: StackSettings, echo: Callable[[str], None] = print) -> list[str]:
    """Create the ACLs that are missing; returns what was created. On a cluster without an
    authorizer (security disabled) there is nothing to do."""
    admin = _admin(settings)
    try:
        existing = _existing(admin)
    except KafkaException as exc:
        if exc.args[0].code() == KafkaError.SECURITY_DISABLED:
            echo("  the cluster has no authorizer: no ACLs to create")
            return []
        raise
    missing = [g for g in grants(settings) if g.binding() not in existing]
    if missing:
        for future in admin.create_acls([g.binding() for g in missing], request_timeout=30).values():
            future.result(30)
    return [f"allowed {g.describe()}" for g in missing]


def remove_pipeline_acls(settings: StackSettings) -> int:
    """Delete the ACLs of the settings' topic prefix and app id (a test's or a benchmark's
    pipeline, when its topics go); the shared ones stay. Returns how many were deleted."""
    admin = _admin(settings)
    filters = [AclBindingFilter(b.restype, b.name, b.resource_pattern_type, b.principal, b.host,
                                b.operation, b.permission_type)
               for b in (g.binding() for g in pipeline_grants(settings.topic_prefix, settings.app_id))]
    deleted = 0
    for future in admin.delete_acls(filters, request_timeout=30).values():
        deleted += len(future.result(30))
    return deleted


def ensure_users(settings: StackSettings) -> list[str]:
    """Every role's SCRAM user exists with the stack's password for it; a rotation that was cut
    short (its new password saved aside, `<secret>.new`) is finished. Returns what changed."""
    admin = _admin(settings)
    described = admin.describe_user_scram_credentials(list(ROLES), request_timeout=30)
    changed: list[str] = []
    for role in ROLES:
        pending = secrets_dir(settings) / (password_secret_name(role) + ".new")
        if pending.exists():
            set_password(settings, role, pending.read_text().strip())
            os.replace(pending, secrets_dir(settings) / password_secret_name(role))
            changed.append(f"finished rotating the password of Kafka user {role}")
            continue
        try:
            description = described[role].result(30)
            has = any(c.mechanism == ScramMechanism.SCRAM_SHA_512
                      for c in description.scram_credential_infos)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.RESOURCE_NOT_FOUND:
                raise
            has = False
        if not has:
            set_password(settings, role, secret(settings, password_secret_name(role)))
            changed.append(f"created Kafka user {role}")
    return changed


def set_password(settings: StackSettings, user: str, password: str) -> None:
    """Create the user, or replace its SCRAM-SHA-512 password (sessions already open stay)."""
    upsert = UserScramCredentialUpsertion(
        user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS), password.encode())
    admin = _admin(settings)  # kept referenced until the answer: a freed client cancels its requests
    for future in admin.alter_user_scram_credentials([upsert], request_timeout=30).values():
        future.result(30)
