"""Rules of the Prometheus JMX exporter agents in the broker's and Connect's JVMs.

The agent matches each rule against `domain<key=value, ...><>attribute: value` with `^.*(?:rule).*$`,
so every rule ends with the attribute's name and its colon: `count` must not also match `count-avg`.

Small and explicit: each rule names the MBeans and attributes it exports (`includeObjectNames`
limits what the agent even reads), so a scrape carries tens of series per topic or task, not the
thousands a catch-all pattern exports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

# Topics whose per-topic broker counters are exported: the pipeline's (any prefix), not internals.
PIPELINE_TOPIC = r"(.*notifications\..+)"
REQUESTS = "Produce|Fetch|FetchConsumer|OffsetCommit|OffsetFetch|ListOffsets|Metadata|JoinGroup|Heartbeat"


def _gauge(pattern: str, name: str, labels: dict[str, str] | None = None, value: str | None = None,
           help_text: str = "") -> dict[str, Any]:
    rule: dict[str, Any] = {"pattern": pattern, "name": name, "type": "GAUGE", "help": help_text}
    if labels:
        rule["labels"] = labels
    if value is not None:
        rule["value"] = value
    return rule


def _counter(pattern: str, name: str, labels: dict[str, str] | None = None, help_text: str = "") -> dict:
    rule = _gauge(pattern, name, labels, help_text=help_text)
    rule["type"] = "COUNTER"
    return rule


def broker_rules() -> dict[str, Any]:
    return {
        "lowercaseOutputName": True,
        "includeObjectNames": [
            "kafka.server:type=ReplicaManager,name=UnderReplicatedPartitions",
            "kafka.server:type=ReplicaManager,name=PartitionCount",
            "kafka.controller:type=KafkaController,name=OfflinePartitionsCount",
            "kafka.controller:type=KafkaController,name=ActiveControllerCount",
            "kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec,*",
            "kafka.server:type=BrokerTopicMetrics,name=BytesInPerSec",
            "kafka.server:type=BrokerTopicMetrics,name=BytesOutPerSec",
            "kafka.network:type=RequestMetrics,name=RequestsPerSec,*",
        ],
        "rules": [
            _gauge("kafka.server<type=ReplicaManager, name=UnderReplicatedPartitions><>Value:",
                   "kafka_server_under_replicated_partitions",
                   help_text="Partitions with fewer in-sync replicas than replicas"),
            _gauge("kafka.server<type=ReplicaManager, name=PartitionCount><>Value:",
                   "kafka_server_partitions", help_text="Partitions on this broker"),
            _gauge("kafka.controller<type=KafkaController, name=OfflinePartitionsCount><>Value:",
                   "kafka_controller_offline_partitions", help_text="Partitions without a leader"),
            _gauge("kafka.controller<type=KafkaController, name=ActiveControllerCount><>Value:",
                   "kafka_controller_active", help_text="1 on the active controller"),
            _counter(f"kafka.server<type=BrokerTopicMetrics, name=MessagesInPerSec, topic={PIPELINE_TOPIC}>"
                     "<>Count:",
                     "kafka_server_topic_messages_in_total", {"topic": "$1"},
                     help_text="Records appended to a pipeline topic"),
            _counter("kafka.server<type=BrokerTopicMetrics, name=MessagesInPerSec><>Count:",
                     "kafka_server_messages_in_total", help_text="Records appended to any topic"),
            _counter("kafka.server<type=BrokerTopicMetrics, name=(BytesIn|BytesOut)PerSec><>Count:",
                     "kafka_server_bytes_total", {"direction": "$1"}, help_text="Bytes in and out"),
            _counter(f"kafka.network<type=RequestMetrics, name=RequestsPerSec, request=({REQUESTS}), "
                     r"version=(\d+)><>Count:",
                     "kafka_network_requests_total", {"request": "$1", "version": "$2"},
                     help_text="Requests by type and version"),
        ],
    }


def connect_rules() -> dict[str, Any]:
    task = "connector=(.+), task=(.+)"
    return {
        "lowercaseOutputName": True,
        "includeObjectNames": [
            "kafka.connect:type=connect-worker-metrics",
            "kafka.connect:type=connector-metrics,*",
            "kafka.connect:type=connector-task-metrics,*",
            "kafka.connect:type=sink-task-metrics,*",
            "kafka.connect:type=task-error-metrics,*",
            "kafka.connect:type=plugins,*",
            "kafka.consumer:type=consumer-fetch-manager-metrics,client-id=connector-consumer-*",
        ],
        "rules": [
            # String attributes match as "status: running": one series per state, value 1.
            _gauge("kafka.connect<type=connector-metrics, connector=(.+)><>status: ([a-z-]+)",
                   "kafka_connect_connector_status", {"connector": "$1", "status": "$2"}, "1",
                   "1 for the connector's state (running, paused, failed, unassigned, ...)"),
            _gauge(f"kafka.connect<type=connector-task-metrics, {task}><>status: ([a-z-]+)",
                   "kafka_connect_task_status", {"connector": "$1", "task": "$2", "status": "$3"}, "1",
                   "1 for the task's state (running, paused, failed, unassigned, ...)"),
            _counter(f"kafka.connect<type=sink-task-metrics, {task}>"
                     "<>(sink-record-read-total|sink-record-send-total"
                     "|offset-commit-completion-total|offset-commit-skip-total):",
                     "kafka_connect_sink_task_$3", {"connector": "$1", "task": "$2"},
                     help_text="Sink task records read and sent, offset commits"),
            _gauge(f"kafka.connect<type=sink-task-metrics, {task}>"
                   "<>(sink-record-active-count|put-batch-avg-time-ms):",
                   "kafka_connect_sink_task_$3", {"connector": "$1", "task": "$2"},
                   help_text="Records not yet committed; average put() time"),
            _counter(f"kafka.connect<type=task-error-metrics, {task}>"
                     "<>(total-record-errors|total-record-failures"
                     "|total-records-skipped|deadletterqueue-produce-requests|deadletterqueue-produce-failures"
                     "|total-errors-logged|total-retries):",
                     "kafka_connect_task_error_$3", {"connector": "$1", "task": "$2"},
                     help_text="Errors of a task, and its writes to the dead-letter queue"),
            _gauge(r"kafka.consumer<type=consumer-fetch-manager-metrics, "
                   r"client-id=connector-consumer-(.+)-(\d+)>"
                   "<>records-lag-max:",
                   "kafka_connect_sink_records_lag_max", {"connector": "$1", "task": "$2"},
                   help_text="Largest lag of the task's consumer over its partitions, records"),
            _gauge("kafka.connect<type=connect-worker-metrics><>(connector-count|task-count):",
                   "kafka_connect_worker_$1", help_text="Connectors and tasks on this worker"),
            # The project's HTTP sink counts every gateway answer (plugin metrics, KIP-877).
            _counter("kafka.connect<type=plugins, connector=(.+), task=(.+), outcome=(.+)>"
                     "<>gateway-responses-total:",
                     "kafka_connect_http_sink_gateway_responses_total",
                     {"connector": "$1", "task": "$2", "outcome": "$3"},
                     help_text="Gateway answers by outcome: delivered, retried (5xx, 408, 429, "
                               "timeout), rejected"),
        ],
    }


def write(path: Path, rules: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(rules, sort_keys=False, width=200))
    return path
