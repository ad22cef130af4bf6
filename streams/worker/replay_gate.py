"""No digest goes out while the events that belong in it may still be on their way.

After a crash, the events after the group's committed offset are routed again. A hold must not be
flushed before they are, or an event that belonged in a digest would go out after it, on its own.
So after every rebalance the gate asks where each owned partition's events end, and holds that
partition's flushes until the router has seen up to there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

log = logging.getLogger("notipipe.worker")

# partitions -> {partition: end offset} for partitions with events after the committed offset
ReplayProbe = Callable[[list[int]], Mapping[int, int]]


class ReplayGate:
    def __init__(self, probe: ReplayProbe) -> None:
        self._probe = probe
        self._stale = True
        self._catching_up: dict[int, int] = {}  # partition -> offset the replay must reach
        self._routed_upto: dict[int, int] = {}  # partition -> next offset the router will see

    def mark_stale(self) -> None:
        """A rebalance: what is owned, and where it ends, must be asked again."""
        self._stale = True

    def routed(self, partition: int, next_offset: int) -> None:
        self._routed_upto[partition] = next_offset
        target = self._catching_up.get(partition)
        if target is not None and next_offset >= target:
            del self._catching_up[partition]

    async def refresh_if_stale(self, owned: list[int]) -> None:
        if not self._stale:
            return
        targets = await asyncio.get_running_loop().run_in_executor(None, self._probe, owned)
        self._catching_up = {p: end for p, end in targets.items()
                             if self._routed_upto.get(p, -1) < end}
        self._stale = False
        if self._catching_up:
            log.info("holding flushes until events are replayed up to %s", self._catching_up)

    def holds(self, partition: int) -> bool:
        """Must this partition's flushes wait for the replay?"""
        return partition in self._catching_up


class ReplayGates:
    """Several topics' gates as one: a partition's flushes wait until each topic is replayed
    (the events, and the receipts whose fallbacks a flush could otherwise send too early)."""

    def __init__(self, *gates: ReplayGate) -> None:
        self._gates = gates

    def mark_stale(self) -> None:
        for gate in self._gates:
            gate.mark_stale()

    async def refresh_if_stale(self, owned: list[int]) -> None:
        for gate in self._gates:
            await gate.refresh_if_stale(owned)

    def holds(self, partition: int) -> bool:
        return any(gate.holds(partition) for gate in self._gates)


def kafka_replay_probe(kafka_config: dict[str, Any], group: str, topic: str) -> ReplayProbe:
    """Asks the brokers: the group's committed offsets, and each partition's end."""
    def probe(partitions: list[int]) -> dict[int, int]:
        tps = [TopicPartition(topic, p) for p in partitions]
        admin = AdminClient({**kafka_config, "log_level": 0})
        request = ConsumerGroupTopicPartitions(group, tps)
        future = admin.list_consumer_group_offsets([request], require_stable=False)[group]
        committed = {tp.partition: tp.offset for tp in future.result(30).topic_partitions}
        consumer = Consumer({**kafka_config, "log_level": 0, "group.id": f"{group}-offsets-probe"})
        try:
            targets = {}
            for tp in tps:
                low, high = consumer.get_watermark_offsets(tp, timeout=30)
                if high > max(committed.get(tp.partition, -1), low):
                    targets[tp.partition] = high
            return targets
        finally:
            consumer.close()
    return probe
