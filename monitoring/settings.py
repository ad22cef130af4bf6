"""Monitoring settings: scrape and poll intervals, what the lag exporter watches, and every alert
threshold, from `NOTIPIPE_*` environment variables.

`SETTINGS` is the one list: values are parsed from it, and the table in docs/operations.md is
generated from it (`python -m monitoring.docs`; a unit test fails when the table is stale). The
ports of the monitoring parts are stack settings (stack/settings.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any


class MonitoringConfigError(ValueError):
    """A monitoring setting has a value that cannot work."""


@dataclass(frozen=True)
class Setting:
    env: str
    attr: str
    default: Any  # str, int or float: the type the value is parsed as
    meaning: str
    low: float = 0

    def parse(self, environ: Mapping[str, str]) -> Any:
        raw = environ.get(self.env)
        if raw is None or raw == "":
            return self.default
        if isinstance(self.default, str):
            if self.attr.endswith("_regex"):
                try:
                    re.compile(raw)
                except re.error as exc:
                    raise MonitoringConfigError(
                        f"{self.env}={raw!r} is not a regular expression ({exc})") from None
            return raw
        kind = type(self.default)
        try:
            value = kind(raw)
        except ValueError:
            raise MonitoringConfigError(
                f"{self.env}={raw!r} is not a {'whole ' if kind is int else ''}number; unset it or "
                f"give e.g. {self.default}") from None
        if value < self.low:
            raise MonitoringConfigError(f"{self.env}={raw} must be at least {self.low:g}")
        return value


def _literal(text: str) -> str:
    """A regex that matches only `text` (its metacharacters escaped, '-' left as is)."""
    return re.sub(r"([.^$*+?{}\[\]\\|()])", r"\\\1", text)


SETTINGS: tuple[Setting, ...] = (
    Setting("NOTIPIPE_SCRAPE_INTERVAL_S", "scrape_interval_s", 5,
            "How often Prometheus scrapes every target", 1),
    Setting("NOTIPIPE_EVALUATION_INTERVAL_S", "evaluation_interval_s", 5,
            "How often Prometheus evaluates the alert rules", 1),
    Setting("NOTIPIPE_RETENTION_DAYS", "retention_days", 7, "How long Prometheus keeps samples", 1),
    Setting("NOTIPIPE_LAG_POLL_INTERVAL_S", "lag_poll_interval_s", 5,
            "How often the lag exporter reads committed and end offsets", 1),
    Setting("NOTIPIPE_LAG_TIME_MODE", "lag_time_mode", "message",
            "How the exporter computes lag in seconds: `message` (age of the next unconsumed record, "
            "exact; needs READ on the topics) or `rate` (lag / production rate; DESCRIBE is enough)"),
    Setting("NOTIPIPE_LAG_EXPORTER_KAFKA_CONFIG", "lag_exporter_kafka_config", "",
            "Extra librdkafka properties of the lag exporter, `key=value` comma-separated (e.g. "
            "`security.protocol=SASL_SSL,sasl.mechanism=SCRAM-SHA-512,sasl.username=monitoring,"
            "sasl.password=${NOTIPIPE_MONITORING_PASSWORD},ssl.ca.location=/path/ca.pem`; `${VAR}` is "
            "read from the exporter's environment, so a secret never sits in its config file)"),
    Setting("NOTIPIPE_ALERT_ROUTER_GROUPS", "router_groups_regex", "",
            "Consumer groups of the router (regex; default: `NOTIPIPE_APP_ID`, i.e. `notipipe-router`)"),
    Setting("NOTIPIPE_ALERT_SINK_GROUPS", "sink_groups_regex", "connect-.+",
            "Consumer groups of the sink connectors (regex)"),
    Setting("NOTIPIPE_ALERT_INPUT_TOPICS", "input_topics_regex", "",
            "The router's input topics (regex, after `NOTIPIPE_TOPIC_PREFIX`; its ticks topic always "
            "carries a little lag and is left out)"),
    Setting("NOTIPIPE_ALERT_SINK_TOPICS", "sink_topics_regex", "",
            "The topics the sinks drain (regex, after `NOTIPIPE_TOPIC_PREFIX`)"),
    Setting("NOTIPIPE_ALERT_DLQ_TOPICS", "dlq_topics_regex", "",
            "The router's dead-letter topic (regex, after `NOTIPIPE_TOPIC_PREFIX`)"),
    Setting("NOTIPIPE_ALERT_SINK_DLQ_TOPICS", "sink_dlq_topics_regex", "",
            "The sinks' dead-letter topics (regex, after `NOTIPIPE_TOPIC_PREFIX`)"),
    Setting("NOTIPIPE_ALERT_WINDOW_S", "window_s", 120,
            "Window of every rate, change count and growth in the rules", 1),
    Setting("NOTIPIPE_ALERT_FOR_S", "for_s", 300,
            "How long a lag, stall or falling-behind condition must hold before it fires", 0),
    Setting("NOTIPIPE_ALERT_FAST_FOR_S", "fast_for_s", 60,
            "How long a down target, failed task, bad partition, dead letters or errors must last", 0),
    Setting("NOTIPIPE_ALERT_LAG_SECONDS", "lag_seconds", 60.0,
            "Lag (age of the oldest unconsumed record) above which a group is late", 0),
    Setting("NOTIPIPE_ALERT_LAG_GROWTH", "lag_growth", 1000,
            "Messages the lag must grow by over the window, while the group commits, to be falling behind",
            1),
    Setting("NOTIPIPE_ALERT_DLQ_RATE", "dlq_rate", 0.0,
            "Records per second into `notifications.dlq` above which the router's DLQ alert fires", 0),
    Setting("NOTIPIPE_ALERT_SINK_DLQ_RATE", "sink_dlq_rate", 0.0,
            "Records per second into a `notifications.sink-dlq.*` topic above which it fires", 0),
    Setting("NOTIPIPE_ALERT_GATEWAY_ERROR_RATIO", "gateway_error_ratio", 0.05,
            "Share of HTTP sink requests a gateway answers with an error (retried or rejected)", 0),
    Setting("NOTIPIPE_ALERT_LATENCY_P99_S", "latency_p99_s", 2.0,
            "Objective for the 99th percentile of event-to-delivery latency, seconds", 0),
    Setting("NOTIPIPE_ALERT_EXPORTER_STALE_S", "exporter_stale_s", 60,
            "The lag exporter's last good collection may be at most this old", 1),
)


@dataclass(frozen=True)
class MonitoringSettings:
    scrape_interval_s: int = 5
    evaluation_interval_s: int = 5
    retention_days: int = 7
    lag_poll_interval_s: int = 5
    lag_time_mode: str = "message"
    lag_exporter_kafka_config: str = ""
    router_groups_regex: str = "notipipe-router"
    sink_groups_regex: str = "connect-.+"
    input_topics_regex: str = r"notifications\.(events|preferences)"
    sink_topics_regex: str = r"notifications\.deliveries\..+"
    dlq_topics_regex: str = r"notifications\.dlq"
    sink_dlq_topics_regex: str = r"notifications\.sink-dlq\..+"
    window_s: int = 120
    for_s: int = 300
    fast_for_s: int = 60
    lag_seconds: float = 60.0
    lag_growth: int = 1000
    dlq_rate: float = 0.0
    sink_dlq_rate: float = 0.0
    gateway_error_ratio: float = 0.05
    latency_p99_s: float = 2.0
    exporter_stale_s: int = 60

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> MonitoringSettings:
        values = {s.attr: s.parse(environ) for s in SETTINGS}
        if not values["router_groups_regex"]:
            values["router_groups_regex"] = _literal(environ.get("NOTIPIPE_APP_ID") or "notipipe-router")
        # The stack watches its own pipeline's topics: those after NOTIPIPE_TOPIC_PREFIX.
        prefix = _literal(environ.get("NOTIPIPE_TOPIC_PREFIX", ""))
        for attr in ("input_topics_regex", "sink_topics_regex", "dlq_topics_regex", "sink_dlq_topics_regex"):
            if not values[attr]:
                values[attr] = prefix + getattr(cls, attr)
        if values["lag_time_mode"] not in ("message", "rate"):
            raise MonitoringConfigError(
                f"NOTIPIPE_LAG_TIME_MODE={values['lag_time_mode']!r}: give `message` or `rate`")
        settings = cls(**values)
        settings.kafka_properties()  # fails early on a malformed NOTIPIPE_LAG_EXPORTER_KAFKA_CONFIG
        return settings

    def kafka_properties(self) -> dict[str, str]:
        """NOTIPIPE_LAG_EXPORTER_KAFKA_CONFIG as a dict of librdkafka properties."""
        out: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in self.lag_exporter_kafka_config.split(","))):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise MonitoringConfigError(
                    f"NOTIPIPE_LAG_EXPORTER_KAFKA_CONFIG: {item!r} is not key=value "
                    "(e.g. security.protocol=SASL_SSL)")
            out[key.strip()] = value.strip()
        return out

    def environ(self) -> dict[str, str]:
        """These settings as the NOTIPIPE_* variables that give them (for a child process)."""
        return {s.env: str(getattr(self, s.attr)) for s in SETTINGS}

    @property
    def monitored_groups_regex(self) -> str:
        """The groups the lag exporter reports: the router's and the sinks'."""
        return f"^(({self.router_groups_regex})|({self.sink_groups_regex}))$"


assert {s.attr for s in SETTINGS} == {f.name for f in fields(MonitoringSettings)}, "SETTINGS, fields differ"
