"""Every schema a batch needs, at hand before it is routed; while the registry cannot be asked,
the batch waits and asks again with backoff.

Writer schemas are cached per id (``avro_codec.py``), so a running worker needs the registry only
for an id it has not seen: a producer that switched to a newly registered schema version, or the
first event after a start. If the registry cannot be reached then, that is not the record's fault
(``SchemaUnavailable``): dead-lettering it as ``unknown_schema`` would lose a good event, and
letting the error escape would crash the agent with its events unacked (their partitions' offsets
could then never be committed). So the batch waits here, before the router takes its lock: nothing
is skipped, the order is kept, and the tick flushes (quiet-hour releases, digests) go on meanwhile.
An id the registry answers "not found" for is permanent: ``decode`` dead-letters those records.

The subjects the worker writes (deliveries, DLQ) are looked up here too, before the first batch
needs them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from streams.contracts.avro_codec import AvroCodec, SchemaUnavailable
from streams.worker.metrics import PipelineMetrics
from streams.worker.progress import RouterProgress

log = logging.getLogger("notipipe.worker")

FIRST_RETRY_S = 0.5
MAX_RETRY_S = 10.0


def retry_delays(first_s: float = FIRST_RETRY_S, max_s: float = MAX_RETRY_S) -> Callable[[int], float]:
    """Seconds to wait before attempt ``n`` + 1: doubling from ``first_s``, at most ``max_s``."""
    def delay(attempt: int) -> float:
        return min(max_s, first_s * 2 ** min(attempt, 30))
    return delay


class SchemaWait:
    def __init__(self, codec: AvroCodec, write_subjects: Iterable[str], metrics: PipelineMetrics,
                 progress: RouterProgress, delays: Callable[[int], float] | None = None,
                 in_thread: bool = True) -> None:
        self._codec, self._metrics, self._progress = codec, metrics, progress
        self._to_look_up = set(write_subjects)
        self._delay = delays or retry_delays()
        # The registry client blocks; in a thread the event loop keeps serving the timer, the
        # ticks, heartbeats and the web pages while it waits.
        self._in_thread = in_thread

    async def ready(self, payloads: Iterable[bytes | None]) -> None:
        """Return once every writer schema of ``payloads`` (and every written subject's id) is
        cached, or known to be missing from the registry. Waits as long as the registry is away."""
        missing = self._codec.uncached_ids(payloads)
        if not missing and not self._to_look_up:
            return
        attempt = 0
        while True:
            try:
                if self._in_thread:
                    await asyncio.to_thread(self._fetch, missing)
                else:
                    self._fetch(missing)
            except SchemaUnavailable as exc:
                self._progress.waiting(str(exc))
                self._metrics.inc("registry", "retried")
                if attempt == 0:
                    log.warning("%s; the batch waits and asks again, backing off", exc)
                await asyncio.sleep(self._delay(attempt))
                attempt += 1
                continue
            if attempt:
                log.warning("schema registry reachable again after %d retries", attempt)
                self._progress.waiting_over()
            return

    def _fetch(self, missing: set[int]) -> None:
        for subject in sorted(self._to_look_up):  # a copy: two agents may be here at once
            self._codec.schema_id(subject)
            self._to_look_up.discard(subject)
        for schema_id in sorted(missing):
            self._codec.fetch_writer(schema_id)
