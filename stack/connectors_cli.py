"""`notipipe connectors status | apply | restart | replay-dlq`: manage the Kafka Connect sinks.

Also runs on its own: `python -m stack.connectors_cli status`.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stack.connectors_setup import (
    ConnectorError,
    connector_status,
    register_connectors,
    restart_connector,
)
from stack.kafka_access import stack_access
from stack.settings import ConfigError, StackSettings
from streams.connection.kafka import KafkaConfigError
from streams.contracts.topics import SINK_FAMILIES, Topics

ERROR_HEADER_PREFIX = "__connect.errors."
REPLAYED_FROM_HEADER = "notipipe.replayed-from"


def trace_summary(trace: str) -> list[str]:
    """The messages of a Java stack trace (first line and every "Caused by:"), without frames."""
    return [line for line in trace.splitlines()
            if line.strip() and not line.lstrip().startswith(("at ", "... "))]


def print_status(rows: list[dict[str, Any]], full: bool = False) -> None:
    if not rows:
        print("no connectors registered")
    for conn in rows:
        tasks = ", ".join(f"task {t['id']} {t['state']}" for t in conn["tasks"]) or "no tasks"
        print(f"connector {conn['name']:<28} {conn['state']:<8} {tasks}")
        traces = [("connector", conn["trace"]), *((f"task {t['id']}", t["trace"]) for t in conn["tasks"])]
        for owner, trace in traces:
            if trace:
                lines = trace.splitlines() if full else trace_summary(trace)
                hint = "" if full else " (frames left out; --full shows them)"
                print(f"  {owner} failure{hint}:\n    " + "\n    ".join(lines))


def failed(rows: list[dict[str, Any]]) -> bool:
    return any(c["state"] == "FAILED" or any(t["state"] == "FAILED" for t in c["tasks"]) for c in rows)


def cmd_status(settings: StackSettings, names: list[str], as_json: bool, full: bool) -> int:
    rows = connector_status(settings)
    if names:
        unknown = sorted(set(names) - {r["name"] for r in rows})
        if unknown:
            print(f"error: no such connector: {', '.join(unknown)}", file=sys.stderr)
            return 2
        rows = [r for r in rows if r["name"] in names]
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        print_status(rows, full)
    return 1 if failed(rows) else 0


def cmd_apply(settings: StackSettings) -> int:
    changes = register_connectors(settings)
    for change in changes:
        print(change)
    if not changes:
        print("every connector in connectors/ is up to date")
    return 0


def cmd_restart(settings: StackSettings, names: list[str], all_tasks: bool) -> int:
    for name in names:
        restart_connector(settings, name, only_failed=not all_tasks)
        print(f"restart requested for {name} ({'all' if all_tasks else 'failed'} tasks)")
    return 0


@dataclass
class DeadLetter:
    dlq_partition: int
    dlq_offset: int
    key: bytes | None
    value: bytes | None
    errors: dict[str, str]

    @property
    def origin(self) -> tuple[str, int, int] | None:
        try:
            return (self.errors["topic"], int(self.errors["partition"]), int(self.errors["offset"]))
        except (KeyError, ValueError):
            return None

    @property
    def connector(self) -> str:
        return self.errors.get("connector.name", "?")

    @property
    def reason(self) -> str:
        return self.errors.get("exception.message") or self.errors.get("exception.class.name", "?")


def _dead_letter(message: Any) -> DeadLetter:
    errors = {}
    for name, value in message.headers() or []:
        if name.startswith(ERROR_HEADER_PREFIX) and value is not None:
            errors[name[len(ERROR_HEADER_PREFIX):]] = value.decode("utf-8", errors="replace")
    return DeadLetter(message.partition(), message.offset(), message.key(), message.value(), errors)


def replay_producer_config(settings: StackSettings) -> dict[str, Any]:
    """How a replay writes dead letters back: as the operators' principal, acks=all, idempotent
    (a replayed record is written once even when a batch is retried)."""
    return stack_access(settings, "ops").producer_config()


def replay_dlq(settings: StackSettings, dlq_topic: str, connector: str | None = None,
               limit: int | None = None, dry_run: bool = False, echo=print) -> list[DeadLetter]:
    """Produce the DLQ's records (as they were read: original key and value bytes) back to their
    original topic and partition, so every sink of that topic sees them again; the sinks are
    idempotent (upsert, Idempotency-Key). Progress is kept in the consumer group
    `notipipe-dlq-replay.<dlq topic>`, so a record is replayed once; only records that were in the
    DLQ when the replay started are read (a record that fails again waits for the next replay)."""
    from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

    group = f"notipipe-dlq-replay.{dlq_topic}"
    ops = stack_access(settings, "ops")  # operators read the DLQs and write back to the origin
    consumer = Consumer({**ops.confluent_config(), "group.id": group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "enable.partition.eof": True})
    producer = Producer(replay_producer_config(settings))
    replayed: list[DeadLetter] = []
    try:
        metadata = consumer.list_topics(dlq_topic, timeout=10).topics.get(dlq_topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            echo(f"{dlq_topic} does not exist (yet): nothing to replay")
            return []
        partitions = [TopicPartition(dlq_topic, p) for p in sorted(metadata.partitions)]
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions}
        committed = {tp.partition: tp.offset for tp in consumer.committed(partitions, timeout=10)}
        todo = {p for p, end in ends.items() if end > max(committed.get(p, 0), 0)}
        if not todo:
            echo(f"{dlq_topic}: nothing new to replay")
            return []
        consumer.assign([TopicPartition(dlq_topic, p, committed[p] if committed[p] >= 0 else -2)
                         for p in sorted(todo)])
        positions: dict[int, int] = {}
        while todo and (limit is None or len(replayed) < limit):
            message = consumer.poll(5.0)
            if message is None:
                continue
            partition = message.partition()
            if message.error() is not None:
                if message.error().code() == KafkaError._PARTITION_EOF:
                    todo.discard(partition)
                    continue
                raise RuntimeError(f"reading {dlq_topic}: {message.error()}")
            if message.offset() >= ends[partition]:
                todo.discard(partition)
                continue
            positions[partition] = message.offset() + 1
            if message.offset() + 1 >= ends[partition]:
                todo.discard(partition)
            letter = _dead_letter(message)
            if connector and letter.connector != connector:
                continue
            origin = letter.origin
            if origin is None:
                echo(f"  skipped {dlq_topic}-{partition}@{message.offset()}: no origin headers "
                     "(errors.deadletterqueue.context.headers.enable must be true)")
                continue
            topic, orig_partition, orig_offset = origin
            verb = "would replay" if dry_run else "replaying"
            echo(f"  {verb} {dlq_topic}-{partition}@{message.offset()} -> {topic}-{orig_partition} "
                 f"(was @{orig_offset}, {letter.connector}): {letter.reason[:160]}")
            if not dry_run:
                producer.produce(topic, value=letter.value, key=letter.key, partition=orig_partition,
                                 headers=[(REPLAYED_FROM_HEADER,
                                           f"{dlq_topic}:{partition}:{message.offset()}".encode())])
            replayed.append(letter)
        if not dry_run and positions:
            if producer.flush(60) != 0:
                raise RuntimeError("not every replayed record was acknowledged; nothing committed, "
                                   "run the replay again (the sinks are idempotent)")
            consumer.commit(offsets=[TopicPartition(dlq_topic, p, o) for p, o in positions.items()],
                            asynchronous=False)
    finally:
        consumer.close()
    return replayed


def cmd_replay(settings: StackSettings, sink: str, connector: str | None, limit: int | None,
               dry_run: bool) -> int:
    topic = Topics(settings.topic_prefix).sink_dlq(sink) if sink in SINK_FAMILIES else sink
    letters = replay_dlq(settings, topic, connector, limit, dry_run)
    print(f"{'would replay' if dry_run else 'replayed'} {len(letters)} record(s) from {topic}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "connectors", help="Kafka Connect sinks: status, apply configs, restart, replay a DLQ",
        description="Manage the connectors defined in connectors/*.json on the Connect cluster at "
                    "NOTIPIPE_CONNECT_PORT. See docs/connectors.md.")
    actions = parser.add_subparsers(dest="action", required=True)
    status = actions.add_parser("status", help="each connector's and task's state with the failure "
                                               "trace of any failed one; exit 1 if one has failed")
    status.add_argument("names", nargs="*", metavar="NAME", help="only these connectors")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--full", action="store_true", help="whole failure traces")
    actions.add_parser("apply", help="create or update every connector from connectors/*.json "
                                     "(placeholders from NOTIPIPE_* variables); unchanged ones "
                                     "are left alone")
    restart = actions.add_parser("restart", help="restart connectors' failed tasks (after fixing the cause)")
    restart.add_argument("names", nargs="+", metavar="NAME")
    restart.add_argument("--all-tasks", action="store_true", help="restart every task, not only failed ones")
    watch = actions.add_parser(
        "watch", help="restart tasks that failed on a lost connection (the database away), with "
                      "backoff; other failures are left for status to show. Runs until stopped")
    watch.add_argument("--interval", type=float, default=5.0, help="seconds between checks "
                       "(default: %(default)s)")
    replay = actions.add_parser(
        "replay-dlq", help="send a sink DLQ's records back to their original topic and partition")
    replay.add_argument("sink", help="http, jdbc, or a DLQ topic name")
    replay.add_argument("--connector", help="only records this connector dead-lettered")
    replay.add_argument("--limit", type=int, help="replay at most this many records")
    replay.add_argument("--dry-run", action="store_true", help="list what would be replayed; change nothing")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        settings = StackSettings.from_env()
        if args.action == "status":
            return cmd_status(settings, args.names, args.json, args.full)
        if args.action == "apply":
            return cmd_apply(settings)
        if args.action == "restart":
            return cmd_restart(settings, args.names, args.all_tasks)
        if args.action == "watch":
            from stack.connect_watchdog import watch

            watch(settings, args.interval, echo=lambda line: print(line, flush=True))
            return 0
        return cmd_replay(settings, args.sink, args.connector, args.limit, args.dry_run)
    except (ConfigError, ConnectorError, KafkaConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except urllib.error.URLError as exc:
        print(f"error: Kafka Connect is not reachable ({exc.reason}); is the stack up "
              "(`notipipe stack status`)?", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.connectors_cli")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["connectors", *(sys.argv[1:] if argv is None else argv)])
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
