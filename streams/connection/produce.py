"""Producing through librdkafka: every producer's durability settings, and not losing a record to
a full local queue."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import Producer

# Every producer of the pipeline writes with these: a record is acknowledged once every in-sync
# replica has it (on a replicated cluster, min.insync.replicas=2: never on one disk only), and a
# batch retried after a lost acknowledgement is not written twice.
DURABLE: dict[str, Any] = {"acks": "all", "enable.idempotence": True}
_SAME = {"acks": {"all", "-1"}, "enable.idempotence": {"true"}}


def durable(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with the DURABLE settings. A config asking for less (acks=1, no idempotence) is
    refused rather than quietly changed: whoever wrote it expected it to apply."""
    weaker = {key: value for key, value in config.items()
              if key in _SAME and str(value).lower() not in _SAME[key]}
    if weaker:
        raise ValueError(f"producer settings {weaker} are weaker than the pipeline's "
                         f"{DURABLE}: every write must reach the in-sync replicas, exactly once")
    return {**config, **DURABLE}


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
