"""Consumer lag per group, topic and partition, read straight from the brokers (what `notipipe lag`
prints): committed offsets of the group, end offsets of the partitions, and for each partition
with lag the timestamp of the next record the group has not consumed.

Lag in seconds = now - that record's timestamp: how long the oldest waiting record has waited.
It is the lag exporter's `message` mode (NOTIPIPE_LAG_TIME_MODE), so the terminal and the
dashboard agree; a partition without lag has 0 s.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from confluent_kafka.error import KafkaError

from monitoring.settings import MonitoringSettings


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int
    end: int
    lag_seconds: float | None  # None: neither the waiting record nor a production rate to go by
    estimated: bool = False  # lag_seconds from the production rate, not the record's own age

    @property
    def lag(self) -> int:
        return max(0, self.end - self.committed)


def watched_topics(group: str, topics: Iterable[str], s: MonitoringSettings) -> list[str]:
    """The topics of a group that the alerts watch: the router's inputs, the sinks' delivery topics."""
    if re.fullmatch(s.router_groups_regex, group):
        pattern = s.input_topics_regex
    elif re.fullmatch(s.sink_groups_regex, group):
        pattern = s.sink_topics_regex
    else:
        return sorted(topics)
    return sorted(t for t in topics if re.fullmatch(pattern, t))


def rate_estimate(lag: int, produced: int, over_s: float) -> float | None:
    """Seconds the lag represents at the rate the partition was written over the last `over_s`
    (the exporter's `rate` mode): what a principal that may not read records can know."""
    if lag == 0:
        return 0.0
    return lag / (produced / over_s) if produced > 0 else None


def lag_seconds(lag: int, record_timestamp_ms: int | None, now_ms: int) -> float | None:
    if lag == 0:
        return 0.0
    if record_timestamp_ms is None or record_timestamp_ms < 0:
        return None
    return max(0.0, (now_ms - record_timestamp_ms) / 1000)


class LagReader:
    """Reads the lag of consumer groups from the brokers (admin API and one plain consumer)."""

    def __init__(self, bootstrap_servers: str, extra_config: dict[str, str] | None = None,
                 timeout_s: float = 10) -> None:
        self.config = {"bootstrap.servers": bootstrap_servers, **(extra_config or {})}
        self.admin = AdminClient(self.config)
        self.timeout_s = timeout_s

    def groups(self, pattern: str) -> list[str]:
        listed = self.admin.list_consumer_groups(request_timeout=self.timeout_s).result(self.timeout_s)
        return sorted(g.group_id for g in listed.valid if re.fullmatch(pattern, g.group_id))

    def committed(self, group: str) -> dict[tuple[str, int], int]:
        from confluent_kafka import ConsumerGroupTopicPartitions

        futures = self.admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)],
                                                         request_timeout=self.timeout_s)
        result = futures[group].result(self.timeout_s)
        return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions if tp.offset >= 0}

    def end_offsets(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        request = {TopicPartition(t, p): OffsetSpec.latest() for t, p in partitions}
        if not request:
            return {}
        futures = self.admin.list_offsets(request, request_timeout=self.timeout_s)
        out: dict[tuple[str, int], int] = {}
        for tp, future in futures.items():
            try:
                out[(tp.topic, tp.partition)] = future.result(self.timeout_s).offset
            except KafkaException:
                continue  # a topic deleted meanwhile
        return out

    def record_timestamps(self, positions: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
        """The timestamp (ms) of the record at each (topic, partition) offset."""
        if not positions:
            return {}
        consumer = Consumer({**self.config, "group.id": f"notipipe-lag-{uuid.uuid4().hex[:8]}",
                             "enable.auto.commit": False, "enable.partition.eof": False,
                             "fetch.max.bytes": 1 << 20, "max.partition.fetch.bytes": 1 << 16,
                             "log_level": 3})
        found: dict[tuple[str, int], int] = {}
        try:
            consumer.assign([TopicPartition(t, p, offset) for (t, p), offset in positions.items()])
            deadline = time.monotonic() + self.timeout_s
            while len(found) < len(positions) and time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is None:
                    continue
                if message.error() is not None:
                    if message.error().code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                        break
                    continue
                key = (message.topic(), message.partition())
                if key not in found and message.offset() >= positions[key]:
                    found[key] = message.timestamp()[1]
                    consumer.pause([TopicPartition(*key)])
        finally:
            consumer.close()
        return found

    def read(self, group_pattern: str, s: MonitoringSettings, all_topics: bool = False,
             now_ms: int | None = None, rate_sample_s: float = 2.0) -> list[PartitionLag]:
        rows: list[PartitionLag] = []
        for group in self.groups(group_pattern):
            committed = self.committed(group)
            topics = {t for t, _ in committed}
            keep = set(topics if all_topics else watched_topics(group, topics, s))
            committed = {tp: off for tp, off in committed.items() if tp[0] in keep}
            ends = self.end_offsets(committed)
            waiting = {tp: off for tp, off in committed.items() if ends.get(tp, off) > off}
            stamps = self.record_timestamps(waiting)
            now = now_ms if now_ms is not None else int(time.time() * 1000)
            unread = [tp for tp in waiting if tp not in stamps]
            later: dict[tuple[str, int], int] = {}
            if unread:  # records this login may not read: the production rate instead
                time.sleep(rate_sample_s)
                later = self.end_offsets(unread)
            for (topic, partition), offset in sorted(committed.items()):
                tp = (topic, partition)
                end = ends.get(tp)
                if end is None:
                    continue
                lag = max(0, end - offset)
                if tp in later:
                    rows.append(PartitionLag(group, topic, partition, offset, end,
                                             rate_estimate(lag, later[tp] - end, rate_sample_s), True))
                else:
                    rows.append(PartitionLag(group, topic, partition, offset, end,
                                             lag_seconds(lag, stamps.get(tp), now)))
        return rows


def format_table(rows: list[PartitionLag]) -> str:
    """One line per partition, then one per group and topic with its total and its worst age."""
    if not rows:
        return "no committed offsets for the matching groups"
    header = f"{'GROUP':<28} {'TOPIC':<36} {'PART':>4} {'COMMITTED':>10} {'END':>10} {'LAG':>8} {'LAG_S':>8}"
    lines = [header]
    for r in rows:
        seconds = "?" if r.lag_seconds is None else f"{'~' if r.estimated else ''}{r.lag_seconds:.1f}"
        lines.append(f"{r.group:<28} {r.topic:<36} {r.partition:>4} {r.committed:>10} {r.end:>10} "
                     f"{r.lag:>8} {seconds:>8}")
    totals: dict[tuple[str, str], list[PartitionLag]] = {}
    for r in rows:
        totals.setdefault((r.group, r.topic), []).append(r)
    lines.append("")
    for (group, topic), parts in totals.items():
        known = [p.lag_seconds for p in parts if p.lag_seconds is not None]
        worst = f"{max(known):.1f} s" if known else "?"
        lines.append(f"{group} {topic}: lag {sum(p.lag for p in parts)} messages, oldest waiting {worst}")
    return "\n".join(lines)
