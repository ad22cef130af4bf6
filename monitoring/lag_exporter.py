"""Config of the consumer-lag exporter (klag-exporter, built by scripts/setup.sh), generated
from the stack and monitoring settings.

It reads the groups' committed offsets and the partitions' end offsets through the Kafka admin
API every poll, and serves per group, topic and partition: `kafka_consumergroup_group_lag`
(messages), `kafka_consumergroup_group_lag_seconds`, `kafka_consumergroup_group_offset`,
`kafka_partition_latest_offset`, the group's state, and its own health. On the local stack it
logs in as the `monitoring` principal (DESCRIBE only): its librdkafka properties name the
password as `${NOTIPIPE_LAG_EXPORTER_KAFKA_PASSWORD}`, which the exporter reads from its
environment, so the password never sits in its config file. NOTIPIPE_LAG_EXPORTER_KAFKA_CONFIG
adds or overrides properties.
"""

from __future__ import annotations

import json
from pathlib import Path

from monitoring.settings import MonitoringSettings
from stack.kafka_access import stack_access
from stack.settings import StackSettings

VERSION = "0.1.29"
CLUSTER = "notipipe"
PIPELINE_TOPICS = r".*notifications\..+"


def binary(settings: StackSettings) -> Path:
    return settings.tools_dir / "bin" / "klag-exporter"


def _toml(value: object) -> str:
    # JSON strings, numbers and booleans are valid TOML values.
    return json.dumps(value)


PASSWORD_VARIABLE = "NOTIPIPE_LAG_EXPORTER_KAFKA_PASSWORD"


def kafka_properties(settings: StackSettings, monitoring: MonitoringSettings) -> dict[str, str]:
    """The exporter's librdkafka properties: the monitoring login, then the operator's own."""
    access = stack_access(settings, "monitoring")
    login = {key: str(value) for key, value in access.confluent_config().items()
             if key != "bootstrap.servers"}
    if "sasl.password" in login:
        login["sasl.password"] = "${" + PASSWORD_VARIABLE + "}"
    return {**login, **monitoring.kafka_properties()}


def login(settings: StackSettings, monitoring: MonitoringSettings) -> dict[str, str]:
    """The same login for a client of this process (`notipipe lag`): the password itself."""
    access = stack_access(settings, "monitoring")
    return {**{k: str(v) for k, v in access.confluent_config().items() if k != "bootstrap.servers"},
            **monitoring.kafka_properties()}


def password(settings: StackSettings) -> str:
    return stack_access(settings, "monitoring").password or ""


def config_text(settings: StackSettings, monitoring: MonitoringSettings) -> str:
    poll = monitoring.lag_poll_interval_s
    lines = [
        "[exporter]",
        f"poll_interval = {_toml(f'{poll}s')}",
        'http_host = "127.0.0.1"',
        f"http_port = {settings.lag_exporter_port}",
        'granularity = "partition"',
        # Metrics of a cluster that stopped answering vanish after this, instead of freezing.
        f"staleness_threshold = {_toml(f'{max(3 * poll, 15)}s')}",
        "",
        "[exporter.timestamp_sampling]",
        "enabled = true",
        f"mode = {_toml(monitoring.lag_time_mode)}",
        # The age of a record is cached per offset only while the group stays on that offset.
        f"cache_ttl = {_toml(f'{poll}s')}",
        "max_concurrent_fetches = 2",
        'fetch_timeout = "2s"',
        "",
        "[exporter.performance]",
        'kafka_timeout = "10s"',
        'offset_fetch_timeout = "5s"',
        "max_concurrent_groups = 4",
        "max_blocking_threads = 16",
        # Topics and groups of tests come and go every few seconds: see them soon.
        'metadata_cache_ttl = "10s"',
        'consumer_groups_cache_ttl = "10s"',
        "client_recycle_interval = 0",
        "",
        "[[clusters]]",
        f"name = {_toml(CLUSTER)}",
        f"bootstrap_servers = {_toml(settings.bootstrap_servers)}",
        f"group_whitelist = {_toml([monitoring.monitored_groups_regex])}",
        "group_blacklist = []",
        # The pipeline's topics (any prefix), not the internal, changelog or ticks topics.
        f"topic_whitelist = {_toml([PIPELINE_TOPICS])}",
        'topic_blacklist = ["^__.*", "^_.*"]',
        "",
        "[clusters.consumer_properties]",
        *(f"{_toml(key)} = {_toml(value)}"
          for key, value in sorted(kafka_properties(settings, monitoring).items())),
        "",
    ]
    return "\n".join(lines)
