"""The alert rules: one definition, rendered into Prometheus' rule file with the thresholds of
`MonitoringSettings`. Each alert has a runbook section in docs/operations.md (anchor = its name in
lower case); tests/monitoring/alerts_test.yml unit-tests every rule with promtool.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from monitoring.settings import MonitoringSettings

RUNBOOK = "docs/operations.md#{anchor}"
GATEWAY_RESPONSES = "kafka_connect_http_sink_gateway_responses_total"


def q(regex: str) -> str:
    """A regex as a PromQL string literal (Go escaping, which JSON's is a subset of)."""
    return json.dumps(regex)


def lag_series(metric: str, s: MonitoringSettings) -> str:
    """`metric` for the router's groups on its input topics, and the sinks' groups on theirs."""
    return (f"({metric}{{group=~{q(s.router_groups_regex)},topic=~{q(s.input_topics_regex)}}}"
            f" or {metric}{{group=~{q(s.sink_groups_regex)},topic=~{q(s.sink_topics_regex)}}})")


def _by_group_topic(metric: str, s: MonitoringSettings) -> str:
    # Summed per group and topic before any range function: the per-partition series carry the
    # member's id and host, which change at every rebalance.
    return f"sum by (group, topic) {lag_series(metric, s)}"


def _w(s: MonitoringSettings) -> str:
    return f"{s.window_s}s"


def _num(value: float) -> str:
    return f"{value:g}"


def _appended_per_second(topics_regex: str, threshold: float, s: MonitoringSettings) -> str:
    """Records appended to the topics per second over the window, above `threshold`: the growth of
    their end offsets, or, for a partition first seen within the window (a dead-letter topic
    that Connect creates at its first error), all its records."""
    offsets = f"kafka_partition_latest_offset{{topic=~{q(topics_regex)}}}"
    # "First seen" only counts when the exporter already ran a window ago: a Prometheus started
    # afresh sees every partition for the first time.
    return (f"(sum by (topic) (rate({offsets}[{_w(s)}])) > {_num(threshold)})"
            f" or (sum by (topic) ({offsets} unless {offsets} offset {_w(s)}) / {s.window_s}"
            f" > {_num(threshold)} and on () (max(kafka_lag_exporter_up offset {_w(s)}) == 1))")


@dataclass(frozen=True)
class Alert:
    name: str
    severity: str  # page: someone acts now; ticket: within working hours
    fast: bool  # `for` is NOTIPIPE_ALERT_FAST_FOR_S (else NOTIPIPE_ALERT_FOR_S)
    expr: Callable[[MonitoringSettings], str]
    summary: str  # may use {{ $labels.x }} and {{ $value }}
    description: str
    settings: tuple[str, ...]  # the NOTIPIPE_ALERT_* variables it reads, for the docs

    @property
    def anchor(self) -> str:
        return self.name.lower()

    def rule(self, s: MonitoringSettings) -> dict[str, Any]:
        return {
            "alert": self.name,
            "expr": self.expr(s),
            "for": f"{s.fast_for_s if self.fast else s.for_s}s",
            "labels": {"severity": self.severity, "service": "notipipe"},
            "annotations": {"summary": self.summary, "description": self.description,
                            "runbook": RUNBOOK.format(anchor=self.anchor)},
        }


ALERTS: tuple[Alert, ...] = (
    Alert(
        "NotipipeConsumerLagHigh", "page", False,
        lambda s: (f"max by (group, topic) {lag_series('kafka_consumergroup_group_lag_seconds', s)}"
                   f" > {_num(s.lag_seconds)}"),
        "{{ $labels.group }} is {{ $value | humanizeDuration }} behind on {{ $labels.topic }}",
        "The oldest record the group has not consumed is older than the lag threshold.",
        ("NOTIPIPE_ALERT_LAG_SECONDS", "NOTIPIPE_ALERT_FOR_S"),
    ),
    Alert(
        "NotipipeConsumerFallingBehind", "page", False,
        lambda s: (f"(delta(({_by_group_topic('kafka_consumergroup_group_lag', s)})[{_w(s)}:])"
                   f" > {s.lag_growth})"
                   f" and on (group, topic) "
                   f"(changes(({_by_group_topic('kafka_consumergroup_group_offset', s)})[{_w(s)}:]) > 0)"),
        "{{ $labels.group }} falls behind on {{ $labels.topic }}: its lag grows while it commits",
        "The group consumes and commits, but slower than records arrive: the lag keeps growing.",
        ("NOTIPIPE_ALERT_LAG_GROWTH", "NOTIPIPE_ALERT_WINDOW_S", "NOTIPIPE_ALERT_FOR_S"),
    ),
    Alert(
        "NotipipeConsumerStalled", "page", False,
        lambda s: (f"(min_over_time(({_by_group_topic('kafka_consumergroup_group_lag', s)})[{_w(s)}:]) > 0)"
                   f" and on (group, topic) "
                   f"(changes(({_by_group_topic('kafka_consumergroup_group_offset', s)})[{_w(s)}:]) == 0)"),
        "{{ $labels.group }} has {{ $value }} records waiting on {{ $labels.topic }} and commits nothing",
        "Records wait for the group, and its committed offsets have not moved for the whole window.",
        ("NOTIPIPE_ALERT_WINDOW_S", "NOTIPIPE_ALERT_FOR_S"),
    ),
    Alert(
        "NotipipeRouterGroupEmpty", "page", True,
        lambda s: f"(kafka_consumergroup_group_state{{group=~{q(s.router_groups_regex)}}} >= 4) <= 5",
        "The router's consumer group {{ $labels.group }} has no members",
        "No worker is in the router's group (state Empty or Dead): nothing routes events.",
        ("NOTIPIPE_ALERT_ROUTER_GROUPS", "NOTIPIPE_ALERT_FAST_FOR_S"),
    ),
    Alert(
        "NotipipeWorkerDown", "page", True,
        lambda s: 'up{job="workers"} == 0',
        "Worker {{ $labels.worker }} ({{ $labels.instance }}) does not answer its /metrics",
        "A listed worker's metrics page does not answer: the process died, hangs, or was stopped "
        "without being de-listed.",
        ("NOTIPIPE_ALERT_FAST_FOR_S",),
    ),
    Alert(
        "NotipipeLagExporterAbsent", "page", True,
        lambda s: ('up{job="lag-exporter"} == 0 or absent(up{job="lag-exporter"})'
                   " or absent(kafka_lag_exporter_last_update_timestamp_seconds)"
                   " or (time() - max(kafka_lag_exporter_last_update_timestamp_seconds))"
                   f" > {s.exporter_stale_s}"),
        "The consumer-lag exporter is down or its figures are stale",
        "Without it no lag, stall or dead-letter alert can fire: they are blind, not quiet.",
        ("NOTIPIPE_ALERT_EXPORTER_STALE_S", "NOTIPIPE_ALERT_FAST_FOR_S"),
    ),
    Alert(
        "NotipipeMonitoringTargetDown", "ticket", True,
        lambda s: 'up{job=~"kafka|connect|postgres"} == 0',
        "Prometheus cannot scrape {{ $labels.job }} ({{ $labels.instance }})",
        "The broker's or Connect's JMX agent, or the PostgreSQL exporter, does not answer.",
        ("NOTIPIPE_ALERT_FAST_FOR_S",),
    ),
    Alert(
        "NotipipeDeadLetters", "ticket", True,
        lambda s: _appended_per_second(s.dlq_topics_regex, s.dlq_rate, s),
        "Events are dead-lettered to {{ $labels.topic }}",
        "The router dead-letters events it cannot decode or that break the contract.",
        ("NOTIPIPE_ALERT_DLQ_TOPICS", "NOTIPIPE_ALERT_DLQ_RATE", "NOTIPIPE_ALERT_WINDOW_S",
         "NOTIPIPE_ALERT_FAST_FOR_S"),
    ),
    Alert(
        "NotipipeSinkDeadLetters", "page", True,
        lambda s: _appended_per_second(s.sink_dlq_topics_regex, s.sink_dlq_rate, s),
        "Deliveries are dead-lettered to {{ $labels.topic }}",
        "A sink connector gave deliveries up: a gateway or the database refused them for good, or "
        "retries ran out. Those users were not notified.",
        ("NOTIPIPE_ALERT_SINK_DLQ_TOPICS", "NOTIPIPE_ALERT_SINK_DLQ_RATE", "NOTIPIPE_ALERT_WINDOW_S",
         "NOTIPIPE_ALERT_FAST_FOR_S"),
    ),
    Alert(
        "NotipipeConnectorTaskFailed", "page", True,
        lambda s: ('max by (connector, task) (kafka_connect_task_status{status="failed"}) == 1'
                   ' or max by (connector) (kafka_connect_connector_status{status="failed"}) == 1'),
        "Connector {{ $labels.connector }} {{ if $labels.task }}task {{ $labels.task }} {{ end }}FAILED",
        "A failed connector or task drains nothing until it is restarted.",
        ("NOTIPIPE_ALERT_FAST_FOR_S",),
    ),
    Alert(
        "NotipipeUnderReplicatedPartitions", "ticket", False,
        lambda s: "sum(kafka_server_under_replicated_partitions) > 0",
        "{{ $value }} partitions are under-replicated",
        "Some partitions have fewer in-sync replicas than replicas: one more broker loss may lose data.",
        ("NOTIPIPE_ALERT_FOR_S",),
    ),
    Alert(
        "NotipipeOfflinePartitions", "page", True,
        lambda s: "sum(kafka_controller_offline_partitions) > 0",
        "{{ $value }} partitions have no leader",
        "Producers and consumers of those partitions are stuck.",
        ("NOTIPIPE_ALERT_FAST_FOR_S",),
    ),
    Alert(
        "NotipipeGatewayErrors", "page", True,
        lambda s: (f"sum by (connector) (rate({GATEWAY_RESPONSES}{{outcome!=\"delivered\"}}[{_w(s)}]))"
                   f" / sum by (connector) (rate({GATEWAY_RESPONSES}[{_w(s)}]))"
                   f" > {_num(s.gateway_error_ratio)}"),
        "{{ $labels.connector }}: {{ $value | humanizePercentage }} of gateway requests fail",
        "The provider gateway answers errors (retried: 5xx, 408, 429, timeouts; or rejected: other 4xx).",
        ("NOTIPIPE_ALERT_GATEWAY_ERROR_RATIO", "NOTIPIPE_ALERT_WINDOW_S", "NOTIPIPE_ALERT_FAST_FOR_S"),
    ),
    Alert(
        "NotipipeDeliveryLatencyHigh", "page", False,
        lambda s: ("histogram_quantile(0.99, sum by (le) (rate(notipipe_delivery_latency_seconds_bucket"
                   f"[{_w(s)}]))) > {_num(s.latency_p99_s)}"),
        "p99 event-to-delivery latency is over its objective",
        "Deliveries sent at routing time reach Kafka later than the objective.",
        ("NOTIPIPE_ALERT_LATENCY_P99_S", "NOTIPIPE_ALERT_WINDOW_S", "NOTIPIPE_ALERT_FOR_S"),
    ),
)


def rule_groups(s: MonitoringSettings) -> dict[str, Any]:
    return {"groups": [{"name": "notipipe", "interval": f"{s.evaluation_interval_s}s",
                        "rules": [alert.rule(s) for alert in ALERTS]}]}


def render(s: MonitoringSettings) -> str:
    header = "# Generated by monitoring/alerts.py from NOTIPIPE_ALERT_* settings: edit those, not this.\n"
    return header + yaml.safe_dump(rule_groups(s), sort_keys=False, width=120)


def write(path: Path, s: MonitoringSettings) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(s))
    return path
