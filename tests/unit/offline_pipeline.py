"""The worker's real composition (``streams.worker.app.Worker``) built without a broker or a
registry, for unit tests: the schema registry is stood in for; its librdkafka producers point at
a port where nothing listens (nothing they send is ever acked)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_avro_codec import FakeRegistry
from unit_helpers import T0

import streams.worker.app
from streams.connection.kafka import KafkaAccess
from streams.contracts.topics import Topics
from streams.core.clock import ManualClock
from streams.core.settings import RouterSettings
from streams.worker.app import Worker
from streams.worker.settings import WorkerSettings
from streams.worker.topology import Topology

PARTITIONS = 2
NO_BROKER = "127.0.0.1:9"  # the discard port: nothing listens there on a test machine


class RegisteredRegistry(FakeRegistry):
    """A registry where `notipipe stack up` has registered every schema the worker looks up."""

    def lookup(self, subject: str, text: str) -> int:
        return self.register(subject, text)


def offline_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Worker:
    """The worker (its Faust app not started), its data in ``tmp_path``."""
    monkeypatch.setattr(streams.worker.app, "SchemaRegistryClient", lambda conf: RegisteredRegistry())
    settings = WorkerSettings.from_env({"NOTIPIPE_DATA_DIR": str(tmp_path),
                                        "NOTIPIPE_BOOTSTRAP_SERVERS": NO_BROKER})
    topics = Topics(settings.topic_prefix)
    topology = Topology(topics, topics.ticks(settings.app_id), PARTITIONS)
    return Worker(settings, RouterSettings(), ManualClock(T0), topology,
                  KafkaAccess(NO_BROKER, security_protocol="PLAINTEXT"))
