"""Work around a replay gap in faust-streaming 0.15 + aiokafka 0.14 for never-committed partitions.

Wraps: ``Consumer.seek_to_committed`` (Faust's aiokafka driver), for the behaviour of aiokafka's
``AIOKafkaConsumer.seek_to_committed`` described below.

After a table recovery Faust "seeks stream partitions to committed offsets" and then resumes the
flow, which clears the agents' queues. aiokafka's `seek_to_committed` only seeks partitions whose
committed offset is above 0, so a partition the group has never committed keeps the position of
records fetched during the recovery, records the cleared queues dropped. They are never read
again, and the next commit on that partition moves past them: lost events. Seen with a worker
that restarts with an empty data directory (or takes over partitions) while a fresh partition
has unrouted events: tests/integration/test_pipeline_restart.py.

The fix: after that seek, move such partitions to their beginning, which is where
`auto_offset_reset=earliest` would have started them.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any

log = logging.getLogger("notipipe.worker")


def seek_uncommitted_to_beginning(consumer: Any, topics: Collection[str]) -> None:
    """Wrap ``consumer.seek_to_committed`` (a Faust consumer) for the given input topics."""
    original = consumer.seek_to_committed

    async def seek_to_committed() -> Mapping[Any, int | None]:
        committed = await original()
        uncommitted = [tp for tp, offset in committed.items() if not offset and tp.topic in topics]
        if uncommitted:
            log.info("no committed offset for %s: reading them from the beginning",
                     sorted(f"{tp.topic}/{tp.partition}" for tp in uncommitted))
            for tp in uncommitted:
                # Offset 0, or the log start if retention removed it (offset reset: earliest).
                await consumer.seek(tp, 0)
        return committed

    consumer.seek_to_committed = seek_to_committed
