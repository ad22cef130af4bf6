"""The dashboard's panels, defined once: the live page (monitoring/dashboard.py) draws them, and
the Grafana dashboard (monitoring/grafana.py) is generated from them, so the two cannot drift.

Queries are PromQL with two placeholders: `$__rate_interval` (Grafana's own variable; the live
page puts the window from `rate_window`) and the group/topic regexes of `MonitoringSettings`,
filled in by `resolve`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from monitoring.alerts import lag_series, q
from monitoring.settings import MonitoringSettings

RATE = "$__rate_interval"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str  # Grafana's legend format: {{label}} is the series' label value


@dataclass(frozen=True)
class Panel:
    id: str
    title: str
    kind: str  # timeseries | bars | stat | states | alerts
    unit: str  # s | short | ops (per second) | bytes | none
    description: str
    queries: tuple[Query, ...] = ()
    width: int = 12  # of Grafana's 24 columns; the live page uses half or full rows likewise
    empty_text: str = "no data"  # what a panel without series says


def _input_consumption(s: MonitoringSettings, by: str = "group, topic") -> str:
    return (f"sum by ({by}) (rate(kafka_consumergroup_group_offset{{group=~{q(s.router_groups_regex)},"
            f"topic=~{q(s.input_topics_regex)}}}[{RATE}]))")


def _input_production(s: MonitoringSettings) -> str:
    return _appended(s.input_topics_regex)


def _quantile(quantile: float, histogram: str, by: str = "le") -> str:
    return f"histogram_quantile({quantile}, sum by ({by}) (rate({histogram}_bucket[{RATE}])))"


def _appended(topics_regex: str) -> str:
    """Records appended per second to the topics (their end offsets' growth)."""
    return f"sum by (topic) (rate(kafka_partition_latest_offset{{topic=~{q(topics_regex)}}}[{RATE}]))"


def panels(s: MonitoringSettings) -> tuple[Panel, ...]:
    router_lag = (f"kafka_consumergroup_group_lag{{group=~{q(s.router_groups_regex)},"
                  f"topic=~{q(s.input_topics_regex)}}}")
    return (
        Panel("alerts", "Firing alerts", "alerts", "none",
              "Alerts Prometheus holds now (firing first, then pending), with their runbook.", width=24),
        Panel("lag_seconds", "Lag in seconds by group", "timeseries", "s",
              "Age of the oldest record each group has not consumed (max over partitions): the "
              "router on its input topics, the sinks on the delivery topics.",
              (Query(f"max by (group, topic) {lag_series('kafka_consumergroup_group_lag_seconds', s)}",
                     "{{group}} {{topic}}"),)),
        Panel("rates", "Produced vs consumed, records/s", "timeseries", "ops",
              "Records appended to the router's input topics against records the router commits. "
              "Consumed below produced means the lag grows.",
              (Query(_input_production(s), "produced {{topic}}"),
               Query(_input_consumption(s), "consumed {{group}} {{topic}}"))),
        Panel("lag_partition_messages", "Lag per partition, messages", "bars", "short",
              "Records each group has yet to consume, per partition, now.",
              (Query(lag_series("kafka_consumergroup_group_lag", s), "{{group}} p{{partition}} {{topic}}"),)),
        Panel("lag_partition_seconds", "Lag per partition, seconds", "bars", "s",
              "Age of the oldest unconsumed record, per partition, now.",
              (Query(lag_series("kafka_consumergroup_group_lag_seconds", s),
                     "{{group}} p{{partition}} {{topic}}"),)),
        Panel("drain", "Time to drain the router's lag", "stat", "s",
              "Lag divided by how much faster the router consumes than records arrive. No value: "
              "no lag, or not draining (consuming less than 5 % faster than records arrive).",
              (Query(f"sum by (group, topic) ({router_lag}) / on (group, topic) "
                     f"(({_input_consumption(s)} - on (topic) group_left {_input_production(s)})"
                     f" > on (topic) group_left () (0.05 * {_input_production(s)}))",
                     "{{group}} {{topic}}"),), width=8, empty_text="no lag, or not draining"),
        Panel("outcomes", "Router events/s by outcome", "timeseries", "ops",
              "Events the router takes, and what became of them: deliveries sent, held (quiet hours, "
              "digests), folded into digests, dropped by reason, dead-lettered.",
              (Query(f'sum(rate(notipipe_events_total{{outcome="routed"}}[{RATE}]))', "routed"),
               Query(f"sum(rate(notipipe_delivered_total[{RATE}]))", "delivered"),
               Query(f"sum(rate(notipipe_held_total[{RATE}]))", "held"),
               Query(f"sum(rate(notipipe_folded_total[{RATE}]))", "folded"),
               Query(f"sum by (reason) (rate(notipipe_dropped_total[{RATE}]))", "dropped {{reason}}"),
               Query(f"sum(rate(notipipe_dlq_total[{RATE}]))", "DLQ")), width=16),
        Panel("latency", "Delivery latency", "timeseries", "s",
              "Event to delivery acknowledged by Kafka, for deliveries sent at routing time (p50, "
              "p99), and how old events are when the router takes them (p99).",
              (Query(_quantile(0.5, "notipipe_delivery_latency_seconds"), "p50"),
               Query(_quantile(0.99, "notipipe_delivery_latency_seconds"), "p99"),
               Query(_quantile(0.99, "notipipe_event_age_at_routing_seconds"), "age at routing p99"))),
        Panel("dead_letters", "Dead letters and gateway errors, per second", "timeseries", "ops",
              "Records into the router's DLQ and the sinks' DLQs, and gateway answers that were errors.",
              (Query(_appended(s.dlq_topics_regex), "{{topic}}"),
               Query(_appended(s.sink_dlq_topics_regex), "{{topic}}"),
               Query("sum by (connector, outcome) (rate(kafka_connect_http_sink_gateway_responses_total"
                     f'{{outcome!="delivered"}}[{RATE}]))', "{{connector}} {{outcome}}"))),
        Panel("worker_memory", "Worker memory", "timeseries", "bytes",
              "Per worker: the decoded user states kept between batches (estimate) and RocksDB's "
              "shared block cache, which the memtables are charged to.",
              (Query("sum by (worker) (notipipe_state_cache_estimated_bytes)", "{{worker}} state cache"),
               Query("sum by (worker) (notipipe_rocksdb_cache_bytes)", "{{worker}} RocksDB"))),
        Panel("worker_commits", "Offset commit latency", "timeseries", "s",
              "p99 of the router's offset commits, per worker.",
              (Query(_quantile(0.99, "notipipe_commit_latency_seconds", by="worker, le"),
                     "{{worker}} commit p99"),)),
        Panel("rebalances", "Rebalances, last 15 min", "stat", "short",
              "Partition assignments each worker went through (a rebalance pauses routing): more "
              "than a few means workers come and go, or miss their session timeout.",
              (Query("sum by (worker) (increase(notipipe_rebalances_total[15m]))", "{{worker}}"),), width=8),
        Panel("connectors", "Connectors and tasks", "states", "none",
              "State of every connector and task (running, paused, unassigned, failed).",
              (Query("max by (connector, status) (kafka_connect_connector_status)", "{{connector}}"),
               Query("max by (connector, task, status) (kafka_connect_task_status)",
                     "{{connector}} task {{task}}")), width=16),
    )


def rate_window(s: MonitoringSettings) -> str:
    """The window the live page puts for $__rate_interval: four scrapes and two lag polls at least."""
    return f"{max(4 * s.scrape_interval_s, 2 * s.lag_poll_interval_s + s.scrape_interval_s, 15)}s"


def resolved(s: MonitoringSettings) -> list[dict[str, Any]]:
    """The panels as JSON for the live page, with the rate window filled in."""
    window = rate_window(s)
    out = []
    for panel in panels(s):
        queries = tuple(replace(query, expr=query.expr.replace(RATE, window)) for query in panel.queries)
        out.append(asdict(replace(panel, queries=queries)))
    return out
