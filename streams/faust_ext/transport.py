"""Put the lean consumer (``consumer.py``) in Faust's transport.

Faust builds its consumer from the transport's ``Consumer`` class on first use, so the class is
swapped before anything starts.
"""

from __future__ import annotations

from typing import Any

from streams.faust_ext.consumer import LeanDrainConsumer


def use_lean_consumer(app: Any, fetch_min_bytes: int, fetch_max_wait_ms: int) -> None:
    app.transport.Consumer = LeanDrainConsumer.with_fetch(fetch_min_bytes, fetch_max_wait_ms)
