"""Every topic of the pipeline, named once: the worker, the client, the stack, the bench and the
tests all take their names from `Topics`.

A deployment may prefix every name (``NOTIPIPE_TOPIC_PREFIX``), so several pipelines can share a
cluster; the worker's own internal topics (changelogs, ticks) are named after its app id instead.
"""

from __future__ import annotations

from dataclasses import dataclass

CHANNELS = ("email", "sms", "push", "in_app")
# Kafka Connect's dead-letter topics, one per sink family (connectors/*.json name them too).
SINK_FAMILIES = ("http", "jdbc")
WEEK_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    schema_file: str | None  # .avsc in schemas/ registered as `<name>-value`; None: not Avro
    compacted: bool = False
    retention_ms: int | None = None


@dataclass(frozen=True)
class Topics:
    """The pipeline's topic names under one prefix."""

    prefix: str = ""

    @property
    def events(self) -> str:
        return f"{self.prefix}notifications.events"

    @property
    def preferences(self) -> str:
        return f"{self.prefix}notifications.preferences"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}notifications.dlq"

    @property
    def receipts(self) -> str:
        """Delivery receipts from the gateways (DeliveryStatus), keyed and partitioned like events."""
        return f"{self.prefix}notifications.receipts"

    def deliveries(self, channel: str) -> str:
        return f"{self.prefix}notifications.deliveries.{channel}"

    def all_deliveries(self) -> dict[str, str]:
        """Channel -> its delivery topic."""
        return {channel: self.deliveries(channel) for channel in CHANNELS}

    def sink_dlq(self, family: str) -> str:
        return f"{self.prefix}notifications.sink-dlq.{family}"

    @staticmethod
    def ticks(app_id: str) -> str:
        """The worker group's timer topic (internal, named after the app id like Faust's own)."""
        return f"{app_id}-ticks"

    def specs(self) -> list[TopicSpec]:
        """The topics `notipipe stack up` creates, with the schema each one's values follow."""
        return [
            TopicSpec(self.events, "notification_event.avsc", retention_ms=WEEK_MS),
            # Compacted: the latest snapshot per user is the state; a tombstone resets to defaults.
            TopicSpec(self.preferences, "user_preferences.avsc", compacted=True),
            *(TopicSpec(topic, "delivery.avsc", retention_ms=WEEK_MS)
              for topic in self.all_deliveries().values()),
            TopicSpec(self.dlq, "dead_letter.avsc", retention_ms=4 * WEEK_MS),
            TopicSpec(self.receipts, "delivery_status.avsc", retention_ms=WEEK_MS),
            # Made by `stack up`, not by Connect, so Connect's principal needs no right to create.
            *(TopicSpec(self.sink_dlq(family), None, retention_ms=4 * WEEK_MS)
              for family in SINK_FAMILIES),
        ]
