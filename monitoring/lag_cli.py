"""`notipipe lag`: consumer lag per group, topic and partition, in messages and seconds."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from confluent_kafka import KafkaException

from monitoring import lag_exporter
from monitoring.lag import LagReader, format_table
from monitoring.settings import MonitoringSettings
from stack.settings import ConfigError, StackSettings


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "lag", help="consumer lag per group and partition, in messages and seconds",
        description="Read the groups' committed offsets and the partitions' end offsets from the "
                    "brokers and print the lag of each partition: in messages, and in seconds as "
                    "the age of the oldest record the group has not consumed (the lag exporter's "
                    "`message` mode). By default the router's group on its input topics and the "
                    "sink connectors' groups on the delivery topics, as the alerts see them.",
        epilog="Groups: NOTIPIPE_ALERT_ROUTER_GROUPS, NOTIPIPE_ALERT_SINK_GROUPS; topics: "
               "NOTIPIPE_ALERT_INPUT_TOPICS, NOTIPIPE_ALERT_SINK_TOPICS; brokers: "
               "NOTIPIPE_BOOTSTRAP_SERVERS or NOTIPIPE_KAFKA_PORT; client security settings: "
               "NOTIPIPE_LAG_EXPORTER_KAFKA_CONFIG (see docs/operations.md).")
    parser.add_argument("--group", metavar="REGEX",
                        help="groups to show (a regex matched against the whole id; default: the "
                             "router's and the sinks')")
    parser.add_argument("--all-topics", action="store_true",
                        help="every topic the group commits on (e.g. the router's ticks topic), "
                             "not only the watched ones")
    parser.add_argument("--json", action="store_true", help="one JSON object per partition")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        stack = StackSettings.from_env()
        s = MonitoringSettings.from_env()
        reader = LagReader(stack.bootstrap_servers, lag_exporter.login(stack, s))
        rows = reader.read(args.group or s.monitored_groups_regex, s, all_topics=args.all_topics)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KafkaException as exc:
        print(f"error: cannot read offsets from {stack.bootstrap_servers}: {exc}. Is the broker up "
              "(`notipipe stack status`)?", file=sys.stderr)
        return 1
    if args.json:
        for row in rows:
            print(json.dumps({**asdict(row), "lag": row.lag}))
    else:
        print(format_table(rows))
        if any(r.lag_seconds is None for r in rows):
            print("?: no record to date the lag by, and nothing produced meanwhile to estimate it from")
        if any(r.estimated for r in rows):
            print("~: estimated from the production rate (the monitoring login may not read records)")
    return 0
