"""Offsets read as the stack's admin: topics' ends, groups' commits, the lag between them.

A reader lives for one reading (one poll of the lags, one mark). Clients kept across a run
went stale after a rolling restart of every broker: watermark reads answered "unknown
partition" and group-offset requests timed out, while fresh clients read the same cluster fine.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient


class OffsetReader:
    def __init__(self, admin_config: dict[str, Any], group_id: str) -> None:
        self.admin = AdminClient({**admin_config, "log_level": 0})
        # Never subscribes: it reads watermarks, and is no member of any group.
        self.consumer = Consumer({**admin_config, "group.id": group_id, "enable.auto.commit": False,
                                  "log_level": 0})

    def close(self) -> None:
        self.consumer.close()

    def __enter__(self) -> OffsetReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def end_offsets(self, topic: str) -> dict[int, int]:
        """Partition -> end offset; empty if the topic does not exist (a DLQ nobody wrote)."""
        meta = self.admin.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            return {}
        return {p: self.consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in meta.partitions}

    def committed(self, group: str, topic: str, partitions: list[int]) -> dict[int, int]:
        """Partition -> the group's committed offset (0 where it has none yet)."""
        request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in partitions])
        result = self.admin.list_consumer_group_offsets([request])[group].result(15)
        return {tp.partition: max(tp.offset, 0) for tp in result.topic_partitions}

    def lag(self, group: str, topics: list[str]) -> int:
        """Records of ``topics`` the group has not committed past."""
        total = 0
        for topic in topics:
            ends = self.end_offsets(topic)
            committed = self.committed(group, topic, list(ends))
            total += sum(max(0, end - committed.get(p, 0)) for p, end in ends.items())
        return total
