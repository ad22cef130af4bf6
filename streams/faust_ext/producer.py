"""Faust's aiokafka producer, idempotent and acknowledged by every in-sync replica.

Replaces: ``faust.transport.drivers.aiokafka.Producer._settings_extra``, which asks aiokafka for
``acks=all`` and idempotence only inside transactions (the worker does not use Faust's
transactions). The worker's DLQ records, ticks and preferences changelog go through this producer:
a batch retried after a lost acknowledgement must not be written twice, and a record must not be
acknowledged before the in-sync replicas have it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka


class IdempotentProducer(faust_aiokafka.Producer):
    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}
