"""Put the worker's consumer and producer (``consumer.py``, ``producer.py``) in Faust's transport.

Faust builds its consumer and producer from the transport's ``Consumer`` and ``Producer``
classes on first use, so the classes are swapped before anything starts.
"""

from __future__ import annotations

from typing import Any

from streams.faust_ext.consumer import LeanDrainConsumer
from streams.faust_ext.producer import IdempotentProducer


def use_worker_transport(app: Any, fetch_min_bytes: int, fetch_max_wait_ms: int) -> None:
    app.transport.Consumer = LeanDrainConsumer.with_fetch(fetch_min_bytes, fetch_max_wait_ms)
    app.transport.Producer = IdempotentProducer
