"""Which partitions the seek workaround moves; the real case is in test_pipeline_restart.py."""

from __future__ import annotations

import asyncio
from collections import namedtuple
from typing import Any

from streams.faust_ext.partition_seek import seek_uncommitted_to_beginning

TP = namedtuple("TP", "topic partition")


class RecordingConsumer:
    def __init__(self, committed: dict[Any, int | None]) -> None:
        self.committed = committed
        self.seeks: list[tuple[Any, int]] = []

    async def seek_to_committed(self) -> dict[Any, int | None]:
        return self.committed

    async def seek(self, tp: Any, offset: int) -> None:
        self.seeks.append((tp, offset))


def test_only_never_committed_input_partitions_move_to_the_beginning() -> None:
    committed = {TP("events", 0): None, TP("events", 1): 0, TP("events", 2): 17,
                 TP("app-users-changelog", 0): None}
    consumer = RecordingConsumer(committed)
    seek_uncommitted_to_beginning(consumer, {"events"})
    returned = asyncio.run(consumer.seek_to_committed())
    assert returned == committed  # Faust still gets what aiokafka reported
    assert sorted(consumer.seeks) == [(TP("events", 0), 0), (TP("events", 1), 0)]
