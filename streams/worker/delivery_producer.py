"""Deliveries (and the users table's changelog, see changelog_table.py) produced through
librdkafka: it batches in C, so a record costs one cheap Python call instead of a Faust send (a
future, a callback and aiokafka accumulator work each).

Deliveries and changelog records go through two librdkafka producers. A delivery's latency is
the pipeline's, so it lingers 1 ms by default (``NOTIPIPE_DELIVERY_LINGER_MS``; 5 ms cost 4–5 ms
of median latency at 2,400 events/s and saved no CPU that showed, docs/capacity.md). Nothing
waits for a changelog record before the next commit's flush, so those linger 50 ms and travel in
large batches. Each event writes one; at moderate load a 5 ms batch held only a few, and the work
per batch showed (measured: 1 KB records at 3,000/s over 12 partitions cost the producing process
~36 µs of CPU each at 5 ms, ~22 µs at 50 ms; the broker's share fell too).

Faust commits the consumer offsets only after flushing its own producer; the worker makes that
flush run `flush_for_commit` first (`streams/faust_ext/commit_hook.py`), so an offset is never
committed before the deliveries and state changes of the events below it are on the broker
(at-least-once, as with Faust's sends). Faust picks the offsets to commit before that flush, so
the flush waits for the records sent until it began, not for an empty queue: the router goes on
sending while it waits, and under steady load with slow acknowledgements (a broker restarting on
a busy machine) librdkafka's own flush, which waits for an empty queue, may never return.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import KafkaError, Producer

from streams.connection.produce import durable, produce
from streams.contracts.avro_codec import AvroCodec
from streams.contracts.delivery_avro import DeliveryEncoder
from streams.contracts.schemas import subject_for
from streams.core.model import Delivery

log = logging.getLogger("notipipe.deliveries")

DELIVERY_LINGER_MS = 1  # the default: added to every delivery's latency
STATE_LINGER_MS = 50  # changelog records: latency nobody waits for (see the module doc)


class DeliveryProduceError(RuntimeError):
    """The broker did not take a delivery; the offsets of its event must not be committed."""


class AckTracker:
    """Counts records of one batch still waiting for the broker. Delivery reports arrive on
    whichever thread polls the producer (the worker polls on its event loop)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.pending = 0
        self.failed = 0

    def add(self) -> None:
        with self._lock:
            self.pending += 1

    def done(self, ok: bool) -> None:
        with self._lock:
            self.pending -= 1
            self.failed += not ok


class SentSince:
    """What one producer sent in one stretch between two pre-commit flushes, counted until the
    broker has it. A flush closes the current stretch and waits for it and any older one still
    open; records sent meanwhile belong to the next."""

    def __init__(self, on_error: Callable[[KafkaError, Any], None]) -> None:
        self._on_error = on_error  # where a record's failure is told
        self._closed: list[AckTracker] = []
        self._open()

    def _open(self) -> None:
        self.current = tracker = AckTracker()
        on_error = self._on_error

        def report(err: KafkaError | None, msg: Any) -> None:
            if err is not None:
                on_error(err, msg)
            tracker.done(err is None)
        self.report = report  # one callback per stretch, not one closure per record

    def close(self) -> None:
        """Start a new stretch; the records sent so far are what the next ``unacked`` counts."""
        self._closed.append(self.current)
        self._open()

    def unacked(self) -> int:
        """Records of the closed stretches the broker has not acknowledged (nor refused) yet;
        stretches done are forgotten."""
        self._closed = [tracker for tracker in self._closed if tracker.pending > 0]
        return sum(tracker.pending for tracker in self._closed)


def report_then(report: Callable[[KafkaError | None, Any], None], handler: Callable[[Any], None],
                failed: Callable[[Exception], None]) -> Callable[[KafkaError | None, Any], None]:
    """A record's delivery report: counted by ``report``, then, if the broker has the record,
    ``handler(msg)``. What the handler raises goes to ``failed``: raised inside librdkafka's poll,
    confluent-kafka turns it into a SystemError that names nothing (Python 3.11)."""

    def on_delivery(err: KafkaError | None, msg: Any) -> None:
        report(err, msg)
        if err is None:
            try:
                handler(msg)
            except Exception as exc:
                failed(exc)
    return on_delivery


def tell_offset(on_written: Callable[[int, int], None]) -> Callable[[Any], None]:
    """``on_written(partition, offset)`` of a written changelog record. A batch resent after a lost
    acknowledgement (a broker stopping) that the broker finds already written is acknowledged
    without an offset; nothing is told then: the persisted offset stays behind and a recovery
    reads a little more, which is safe."""

    def written(msg: Any) -> None:
        offset = msg.offset()
        if offset is not None:
            on_written(msg.partition(), offset)
    return written


class DeliveryProducer:
    flush_timeout_s = 120.0  # the pre-commit flush: past this, the commit fails (nothing is lost)

    def __init__(self, kafka_config: Mapping[str, Any], codec: AvroCodec, topics: Mapping[str, str],
                 client_id: str = "notipipe", linger_ms: int = DELIVERY_LINGER_MS) -> None:
        self._topics = topics  # channel -> topic
        self._linger_s = linger_ms / 1000
        self._encoder = DeliveryEncoder(codec, {ch: subject_for(t) for ch, t in topics.items()})
        self._errors: list[str] = []
        self._after_flush: list[Callable[[], None]] = []
        # What each pre-commit flush waits for, per producer: records sent before it began.
        self._sent = SentSince(self._on_delivery)
        self._sent_changelog = SentSince(self._on_delivery)
        config = durable({  # acks=all, idempotent: whatever kafka_config says
            **kafka_config,  # servers, security and credentials (streams/connection)
            # Same key -> partition mapping as Java clients and aiokafka (Faust's own sends).
            "partitioner": "murmur2_random",
            "compression.type": "lz4",
            "queue.buffering.max.messages": 500_000,
            "logger": log,  # librdkafka's own messages (broker down...) as the worker's log records
        })
        # Client ids name them in the broker's metrics, logs and quotas.
        self.configs = {
            "deliveries": {**config, "linger.ms": linger_ms, "client.id": f"{client_id}-deliveries"},
            "changelog": {**config, "linger.ms": STATE_LINGER_MS, "client.id": f"{client_id}-changelog"},
        }
        self._producer = Producer(self.configs["deliveries"])
        self._state_producer = Producer(self.configs["changelog"])

    def _on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()}: {err}")
            log.error("record for %s not written: %s", msg.topic(), err)

    def send(self, delivery: Delivery, tracker: AckTracker | None = None,
             on_acked: Callable[[], None] | None = None) -> None:
        """Produce a delivery; ``tracker`` counts it until the broker has it, ``on_acked`` is
        called (on whichever thread serves the report) once the broker has it."""
        channel = delivery.topic_suffix
        value = self._encoder.encode(delivery)
        sent = self._sent.current
        on_delivery = report = self._sent.report
        if tracker is not None:
            def on_delivery(err: KafkaError | None, msg: Any) -> None:
                report(err, msg)
                tracker.done(err is None)
        elif on_acked is not None:
            on_delivery = report_then(report, lambda _msg: on_acked(), self._handler_failed)

        produce(self._producer, self._topics[channel], delivery.user_id.encode(), value,
                on_delivery)
        # Counted once queued: its report comes from a later poll, and a refused call (bad
        # topic...) leaves nothing to wait for.
        sent.add()
        if tracker is not None:
            tracker.add()

    async def wait_acked(self, tracker: AckTracker, timeout_s: float = 120.0) -> None:
        """Until the broker has every record sent with ``tracker`` (only those: a full flush
        would also wait for everything the router sends meanwhile)."""
        deadline = time.monotonic() + timeout_s
        # Records sent just now wait out the linger before they even leave: no use polling
        # before then (each poll is a turn of the event loop).
        pause = self._linger_s
        while tracker.pending > 0:
            self._producer.poll(0)
            if tracker.pending > 0:
                if time.monotonic() > deadline:
                    raise DeliveryProduceError(
                        f"{tracker.pending} deliveries still unacknowledged after {timeout_s}s")
                await asyncio.sleep(pause)
                pause = 0.001
        if tracker.failed:
            raise DeliveryProduceError(f"{tracker.failed} deliveries failed: {self._errors[:3]}")

    def send_raw(self, topic: str, partition: int, key: bytes, value: bytes | None,
                 on_written: Callable[[int, int], None]) -> None:
        """Produce an already-encoded changelog record (through the state producer);
        ``on_written(partition, offset)`` once the broker has it, if it tells the offset
        (``tell_offset``)."""
        sent = self._sent_changelog.current
        on_delivery = report_then(self._sent_changelog.report, tell_offset(on_written),
                                  self._handler_failed)
        produce(self._state_producer, topic, key, value, on_delivery, partition=partition)
        sent.add()

    def _handler_failed(self, error: Exception) -> None:
        self._errors.append(f"a delivery report handler failed: {error!r}")
        log.error("a delivery report handler failed", exc_info=error)

    def poll(self) -> None:
        """Serve delivery callbacks and surface failures; cheap (two C calls)."""
        self._producer.poll(0)
        self._state_producer.poll(0)
        if self._errors:
            raise DeliveryProduceError(f"{len(self._errors)} records (deliveries or changelog) "
                                       f"failed: {self._errors[:3]}")

    async def flush(self) -> None:
        """Until the broker has every record sent before this call (deliveries and changelog)."""
        deliveries, changelog = self._sent, self._sent_changelog
        deliveries.close()
        changelog.close()
        timeout_s = self.flush_timeout_s
        deadline = time.monotonic() + timeout_s
        pause = 0.001
        while deliveries.unacked() or changelog.unacked():
            if time.monotonic() > deadline:
                raise DeliveryProduceError(
                    f"{deliveries.unacked()} deliveries and {changelog.unacked()} changelog "
                    f"records sent before this commit still unacknowledged after {timeout_s}s: "
                    "their offsets are not committed (nothing is lost); are the brokers "
                    "reachable, with enough in-sync replicas?")
            self._producer.poll(0)
            self._state_producer.poll(0)
            await asyncio.sleep(pause)
            pause = min(2 * pause, 0.02)  # a changelog batch lingers 50 ms before it leaves
        self.poll()

    def after_flush(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` on the event loop after each pre-commit flush (everything sent before it
        began is acked)."""
        self._after_flush.append(hook)

    async def flush_for_commit(self) -> None:
        """What must happen before Faust commits offsets: every record sent so far acknowledged,
        then the hooks that may rely on that (the changelog's persisted offsets)."""
        await self.flush()
        for hook in self._after_flush:
            hook()
