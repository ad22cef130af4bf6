"""Where the pipeline is (the Kafka brokers, the schema registry, the topics' prefix), and which
version of the event contract a process speaks."""

from __future__ import annotations

from dataclasses import dataclass

from streams.contracts.schemas import history
from streams.contracts.topics import Topics
from streams.core.config import Invalid, Parser, env, text


def _event_version(text: str) -> int:
    released = [v for v, _ in history("notification_event")]
    try:
        version = int(text)
    except ValueError:
        raise Invalid(f"not a whole number: {text!r}") from None
    if version and version not in released:
        raise Invalid(f"v{version} was never released (schemas/history/notification_event/)")
    return version


RELEASED_EVENT_VERSION = Parser(_event_version, "0 (the current version) or a released "
                                "NotificationEvent version (schemas/history/notification_event/)")

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_REGISTRY = "http://127.0.0.1:8081/apis/ccompat/v7"


@dataclass(frozen=True, slots=True)
class Endpoints:
    bootstrap_servers: str = env("BOOTSTRAP_SERVERS", DEFAULT_BOOTSTRAP, "Kafka brokers", text())
    registry_url: str = env("REGISTRY_URL", DEFAULT_REGISTRY,
                            "Confluent-compatible schema registry API", text())
    topic_prefix: str = env("TOPIC_PREFIX", "", "Prefix of every pipeline topic", text())
    event_schema_version: int = env(
        "EVENT_SCHEMA_VERSION", 0, "NotificationEvent version (schemas/history/) that producers "
        "write and workers read; 0: the current one. Pins a side during a contract rollout",
        RELEASED_EVENT_VERSION)

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)
