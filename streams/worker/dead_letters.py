"""Records the router cannot use go to the DLQ with the reason, their bytes untouched."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from streams.contracts.avro_codec import AvroCodec
from streams.contracts.schemas import subject_for
from streams.core.clock import Clock
from streams.core.model import dead_letter
from streams.core.routing.validation import InvalidRecord
from streams.worker.metrics import PipelineMetrics

log = logging.getLogger("notipipe.worker")

# (key, value, headers) -> awaitable that resolves once the broker has the record
SendAndWait = Callable[[bytes | None, bytes, list[tuple[str, bytes]]], Awaitable[Any]]


class DeadLetters:
    def __init__(self, codec: AvroCodec, topic: str, send_and_wait: SendAndWait, clock: Clock,
                 metrics: PipelineMetrics) -> None:
        self._codec, self._subject = codec, subject_for(topic)
        self._send_and_wait, self._clock, self._metrics = send_and_wait, clock, metrics

    async def write(self, message: Any, error: Exception) -> None:
        """Dead-letter a consumed record; returns once the broker has it (it must not be lost)."""
        reason = error.dlq_reason if isinstance(error, InvalidRecord) else getattr(error, "reason", "invalid")
        source = f"{message.topic}/{message.partition}/{message.offset}"
        record = dead_letter(source_topic=message.topic, source_partition=message.partition,
                             source_offset=message.offset, key=message.key, value=message.value,
                             reason=reason, error=str(error), failed_at=self._clock.now_ms())
        headers = [("notipipe.error.reason", reason.encode()),
                   ("notipipe.error.message", str(error)[:1000].encode()),
                   ("notipipe.source", source.encode())]
        await self._send_and_wait(message.key, self._codec.encode(self._subject, record), headers)
        self._metrics.inc("dlq", reason)
        # The reason code only: an error's text may quote the record (addresses, titles, bodies).
        # It is in the DLQ record, next to the original bytes.
        log.warning("dead-lettered %s: %s (%s)", source, reason, type(error).__name__)
