"""The worker's real ``Pipeline`` built without a broker or a registry, for unit tests: the
topology lookup and the schema registry are stood in for; its librdkafka producers point at a
port where nothing listens (nothing they send is ever acked)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_avro_codec import FakeRegistry
from unit_helpers import T0

import streams.app
from streams.app import Pipeline
from streams.clock import ManualClock
from streams.settings import RouterSettings
from streams.worker_settings import WorkerSettings

PARTITIONS = 2
NO_BROKER = "127.0.0.1:9"  # the discard port: nothing listens there on a test machine


class RegisteredRegistry(FakeRegistry):
    """A registry where `notipipe stack up` has registered every schema the worker looks up."""

    def lookup(self, subject: str, text: str) -> int:
        return self.register(subject, text)


def offline_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Pipeline:
    """The worker's Pipeline (its Faust app not started), its data in ``tmp_path``."""
    monkeypatch.setattr(streams.app, "discover_partitions", lambda *args: PARTITIONS)
    monkeypatch.setattr(streams.app, "SchemaRegistryClient", lambda conf: RegisteredRegistry())
    ws = WorkerSettings.from_env({"NOTIPIPE_DATA_DIR": str(tmp_path),
                                  "NOTIPIPE_BOOTSTRAP_SERVERS": NO_BROKER})
    return Pipeline(ws, RouterSettings(), ManualClock(T0))
