"""The live feed's source: every in-app delivery, read from its topic as it is written.

Each instance reads all partitions itself (assigned, no consumer group, nothing committed),
starting where the topic ended when the instance started: it only pushes what is new; what came
before is in PostgreSQL. librdkafka is blocking, so the consumer runs in a thread of its own and
hands each delivery to the event loop, which owns the hub.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, TopicPartition

from inbox.notifications import Notification
from streams.contracts.avro_codec import AvroCodec, DecodeError
from streams.core.model import Delivery

log = logging.getLogger("notipipe.inbox.feed")


class FeedError(RuntimeError):
    """The feed cannot start: the topic is missing or the broker unreachable."""


class DeliveryFeed:
    def __init__(self, consumer_config: dict, topic: str, codec: AvroCodec,
                 deliver: Callable[[str, Notification], None], loop: asyncio.AbstractEventLoop) -> None:
        self.topic = topic
        self.codec = codec
        self.deliver = deliver
        self.loop = loop
        self.consumer = Consumer(consumer_config)
        self.partitions = 0
        self.received = 0
        self.undecodable = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inbox-feed", daemon=True)

    def start(self, timeout_s: float = 30) -> None:
        """Assign every partition at its current end, then read in the background. Returns once
        positioned: anything written to the topic from now on is pushed."""
        metadata = self.consumer.list_topics(self.topic, timeout=timeout_s)
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            raise FeedError(f"topic {self.topic} does not exist ({topic.error if topic else 'unknown'}): "
                            "create the pipeline's topics first (`notipipe stack up` or `stack init`)")
        assignment = []
        for partition in sorted(topic.partitions):
            _, high = self.consumer.get_watermark_offsets(TopicPartition(self.topic, partition),
                                                          timeout=timeout_s)
            assignment.append(TopicPartition(self.topic, partition, high))
        self.consumer.assign(assignment)
        self.partitions = len(assignment)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        self.consumer.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            messages = self.consumer.consume(500, timeout=0.2)
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        log.warning("feed consumer: %s", error)
                    continue
                try:
                    _, record = self.codec.decode(message.value())
                    delivery = Delivery.from_avro(record)
                except (DecodeError, KeyError, ValueError) as exc:
                    # Not the service's to fix (the worker dead-letters bad events before this
                    # topic); counted and logged, the feed goes on.
                    self.undecodable += 1
                    log.warning("feed: skipping %s[%d]@%d: %s", message.topic(), message.partition(),
                                message.offset(), exc)
                    continue
                self.received += 1
                self.loop.call_soon_threadsafe(self.deliver, delivery.user_id,
                                               Notification.from_delivery(delivery))
