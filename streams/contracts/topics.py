"""Topic names and the schema each topic's values follow: the contract in one place."""

from __future__ import annotations

from dataclasses import dataclass

CHANNELS = ("email", "sms", "push", "in_app")


@dataclass(frozen=True)
class TopicSpec:
    name: str
    schema_file: str | None  # .avsc in schemas/ registered as `<name>-value`; None: not Avro
    compacted: bool = False
    retention_ms: int | None = None


def deliveries_topic(channel: str, prefix: str = "") -> str:
    return f"{prefix}notifications.deliveries.{channel}"


def pipeline_topics(prefix: str = "", channels: tuple[str, ...] = CHANNELS) -> list[TopicSpec]:
    week = 7 * 24 * 3600 * 1000
    return [
        TopicSpec(f"{prefix}notifications.events", "notification_event.avsc", retention_ms=week),
        # Compacted: the latest snapshot per user is the state; a tombstone resets to defaults.
        TopicSpec(f"{prefix}notifications.preferences", "user_preferences.avsc", compacted=True),
        *(TopicSpec(deliveries_topic(ch, prefix), "delivery.avsc", retention_ms=week)
          for ch in channels),
        TopicSpec(f"{prefix}notifications.dlq", "dead_letter.avsc", retention_ms=4 * week),
    ]
