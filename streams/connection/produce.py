"""Producing through librdkafka without losing a record to a full local queue."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from confluent_kafka import Producer


def produce(producer: Producer, topic: str, key: bytes, value: bytes | None,
            on_delivery: Callable[[Any, Any], None], **kwargs: Any) -> None:
    """``producer.produce``, waiting for room when librdkafka's local queue is full: serving
    delivery reports is what empties it, so a burst slows the caller down instead of failing."""
    while True:
        try:
            producer.produce(topic, value=value, key=key, on_delivery=on_delivery, **kwargs)
            return
        except BufferError:
            producer.poll(0.05)
