"""Where the pipeline is: the Kafka brokers, the schema registry, and the topics' prefix."""

from __future__ import annotations

from dataclasses import dataclass

from streams.contracts.topics import Topics
from streams.core.config import env, text

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_REGISTRY = "http://127.0.0.1:8081/apis/ccompat/v7"


@dataclass(frozen=True, slots=True)
class Endpoints:
    bootstrap_servers: str = env("BOOTSTRAP_SERVERS", DEFAULT_BOOTSTRAP, "Kafka brokers", text())
    registry_url: str = env("REGISTRY_URL", DEFAULT_REGISTRY,
                            "Confluent-compatible schema registry API", text())
    topic_prefix: str = env("TOPIC_PREFIX", "", "Prefix of every pipeline topic", text())

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)
