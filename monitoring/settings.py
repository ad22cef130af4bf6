"""Monitoring settings: scrape and poll intervals, what the lag exporter watches, and every alert
threshold, from `NOTIPIPE_*` variables declared once (`streams/core/config.py`): the tables in
docs/configuration.md and docs/operations.md are generated from these declarations. The ports of
the monitoring parts are stack settings (stack/settings.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streams.core.config import (
    ConfigError,
    Invalid,
    Parser,
    choice,
    env,
    load,
    number,
    text,
    variables,
    whole,
)

__all__ = ["ConfigError", "MonitoringSettings"]


def _regex() -> Parser:
    def parse(value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise Invalid(str(exc)) from None
        return value
    return Parser(parse, "a regular expression")


def _literal(value: str) -> str:
    """A regex that matches only `value` (its metacharacters escaped, '-' left as is)."""
    return re.sub(r"([.^$*+?{}\[\]\\|()])", r"\\\1", value)


SECONDS = whole(1, 86_400)
# Defaults of the topic patterns: after NOTIPIPE_TOPIC_PREFIX, which resolve() puts in front.
TOPIC_PATTERNS = {
    "input_topics_regex": r"notifications\.(events|preferences)",
    "sink_topics_regex": r"notifications\.deliveries\..+",
    "dlq_topics_regex": r"notifications\.dlq",
    "sink_dlq_topics_regex": r"notifications\.sink-dlq\..+",
}


@dataclass(frozen=True)
class MonitoringSettings:
    scrape_interval_s: int = env("SCRAPE_INTERVAL_S", 5, "How often Prometheus scrapes every "
                                 "target", SECONDS)
    evaluation_interval_s: int = env("EVALUATION_INTERVAL_S", 5, "How often Prometheus evaluates "
                                     "the alert rules", SECONDS)
    retention_days: int = env("RETENTION_DAYS", 7, "How long Prometheus keeps samples",
                              whole(1, 3650))
    lag_poll_interval_s: int = env("LAG_POLL_INTERVAL_S", 5, "How often the lag exporter reads "
                                   "committed and end offsets", SECONDS)
    lag_time_mode: str = env(
        "LAG_TIME_MODE", "rate", "How the exporter computes lag in seconds: `rate` (lag / "
        "production rate; DESCRIBE is enough, so the `monitoring` principal can) or `message` (the "
        "age of the next unconsumed record, exact; needs READ on the topics)",
        choice("rate", "message"))
    lag_exporter_kafka_config: str = env(
        "LAG_EXPORTER_KAFKA_CONFIG", "", "Extra librdkafka properties of the lag exporter, "
        "`key=value` comma-separated (the local stack fills in its `monitoring` login)", text())
    router_groups_regex: str = env("ALERT_ROUTER_GROUPS", "notipipe-router", "Consumer groups of "
                                   "the router (regex)", _regex(), shown="`NOTIPIPE_APP_ID`")
    sink_groups_regex: str = env("ALERT_SINK_GROUPS", "connect-.+", "Consumer groups of the sink "
                                 "connectors (regex)", _regex())
    input_topics_regex: str = env(
        "ALERT_INPUT_TOPICS", TOPIC_PATTERNS["input_topics_regex"], "The router's input topics "
        "(regex, after `NOTIPIPE_TOPIC_PREFIX`; its ticks topic always carries a little lag and is "
        "left out)", _regex())
    sink_topics_regex: str = env("ALERT_SINK_TOPICS", TOPIC_PATTERNS["sink_topics_regex"],
                                 "The topics the sinks drain (regex, after the prefix)", _regex())
    dlq_topics_regex: str = env("ALERT_DLQ_TOPICS", TOPIC_PATTERNS["dlq_topics_regex"],
                                "The router's dead-letter topic (regex, after the prefix)", _regex())
    sink_dlq_topics_regex: str = env("ALERT_SINK_DLQ_TOPICS", TOPIC_PATTERNS["sink_dlq_topics_regex"],
                                     "The sinks' dead-letter topics (regex, after the prefix)",
                                     _regex())
    window_s: int = env("ALERT_WINDOW_S", 120, "Window of every rate, change count and growth in "
                        "the rules", SECONDS)
    for_s: int = env("ALERT_FOR_S", 300, "How long a lag, stall or falling-behind condition must "
                     "hold before it fires", whole(0, 86_400))
    fast_for_s: int = env("ALERT_FAST_FOR_S", 60, "How long a down target, failed task, bad "
                          "partition, dead letters or errors must last", whole(0, 86_400))
    lag_seconds: float = env("ALERT_LAG_SECONDS", 60.0, "Lag (age of the oldest unconsumed "
                             "record) above which a group is late", number(0, 1e9, "seconds"))
    lag_growth: int = env("ALERT_LAG_GROWTH", 1000, "Messages the lag must grow by over the "
                          "window, while the group commits, to be falling behind", whole(1, 10**12))
    dlq_rate: float = env("ALERT_DLQ_RATE", 0.0, "Records per second into `notifications.dlq` "
                          "above which the router's DLQ alert fires", number(0, 1e9, "a rate"))
    sink_dlq_rate: float = env("ALERT_SINK_DLQ_RATE", 0.0, "Records per second into a "
                               "`notifications.sink-dlq.*` topic above which it fires",
                               number(0, 1e9, "a rate"))
    gateway_error_ratio: float = env("ALERT_GATEWAY_ERROR_RATIO", 0.05, "Share of HTTP sink "
                                     "requests a gateway answers with an error (retried or "
                                     "rejected)", number(0, 1, "a share"))
    latency_p99_s: float = env("ALERT_LATENCY_P99_S", 2.0, "Objective for the 99th percentile of "
                               "event-to-delivery latency, seconds", number(0, 1e6, "seconds"))
    exporter_stale_s: int = env("ALERT_EXPORTER_STALE_S", 60, "The lag exporter's last good "
                                "collection may be at most this old", SECONDS)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> MonitoringSettings:
        settings = load(cls, environ)
        settings.kafka_properties()  # fails early on a malformed NOTIPIPE_LAG_EXPORTER_KAFKA_CONFIG
        return settings

    @staticmethod
    def resolve(values: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
        # The stack watches its own pipeline: its app id's group, the topics after its prefix.
        values.setdefault("router_groups_regex",
                          _literal(environ.get("NOTIPIPE_APP_ID") or "notipipe-router"))
        prefix = _literal(environ.get("NOTIPIPE_TOPIC_PREFIX", ""))
        for attr, pattern in TOPIC_PATTERNS.items():
            values.setdefault(attr, prefix + pattern)
        return values

    def kafka_properties(self) -> dict[str, str]:
        """NOTIPIPE_LAG_EXPORTER_KAFKA_CONFIG as a dict of librdkafka properties."""
        out: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in self.lag_exporter_kafka_config.split(","))):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise ConfigError("NOTIPIPE_LAG_EXPORTER_KAFKA_CONFIG", self.lag_exporter_kafka_config,
                                  f"key=value items (e.g. security.protocol=SASL_SSL); {item!r} is not")
            out[key.strip()] = value.strip()
        return out

    def environ(self) -> dict[str, str]:
        """These settings as the NOTIPIPE_* variables that give them (for a child process)."""
        import dataclasses

        return {f.metadata["env"].name: str(getattr(self, f.name))
                for f in dataclasses.fields(self) if "env" in f.metadata}

    @property
    def monitored_groups_regex(self) -> str:
        """The groups the lag exporter reports: the router's and the sinks'."""
        return f"^(({self.router_groups_regex})|({self.sink_groups_regex}))$"


def documented() -> list[Any]:
    """The variables, for the generated tables."""
    return variables(MonitoringSettings)
