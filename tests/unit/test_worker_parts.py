"""Pure parts of the worker: its settings, the due index, the metrics rendering."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from streams.due_index import DueIndex
from streams.metrics import PipelineMetrics
from streams.settings import ConfigError
from streams.worker_settings import WorkerSettings


def test_worker_settings_defaults_and_overrides() -> None:
    default = WorkerSettings.from_env({})
    assert (default.web_port, default.tick_interval_s, default.app_id) == (6066, 1.0, "notipipe-router")
    assert default.data_dir.name == "notipipe-router-6066"
    custom = WorkerSettings.from_env({"NOTIPIPE_WEB_PORT": "7000", "NOTIPIPE_APP_ID": "r2",
                                      "NOTIPIPE_CLOCK_FILE": "/tmp/c.json"})
    assert custom.data_dir.name == "r2-7000" and custom.clock_file == Path("/tmp/c.json")


@pytest.mark.parametrize(("name", "value"), [
    ("NOTIPIPE_WEB_PORT", "http"), ("NOTIPIPE_WEB_PORT", "80"), ("NOTIPIPE_WEB_PORT", "7000.5"),
    ("NOTIPIPE_TICK_INTERVAL_S", "0"), ("NOTIPIPE_SESSION_TIMEOUT_S", "1"),
    ("NOTIPIPE_BATCH_MAX", "0"), ("NOTIPIPE_BATCH_MAX", "10.5"), ("NOTIPIPE_LOG_LEVEL", "loud")])
def test_worker_settings_reject_bad_values_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as error:
        WorkerSettings.from_env({name: value})
    assert error.value.variable == name and value in str(error.value)


def test_due_index_pops_only_due_keys_of_the_partition_and_forgets_stale_times() -> None:
    index = DueIndex()
    index.set(0, b"a", 100)
    index.set(0, b"b", 300)
    index.set(1, b"c", 50)
    index.set(0, b"a", 200)  # moved later: the old time 100 must not fire
    assert index.pop_due(0, 150) == []
    assert index.pop_due(0, 250) == [b"a"]
    assert index.pop_due(1, 1000) == [b"c"]
    index.set(0, b"b", None)  # nothing pending any more
    assert index.pop_due(0, 10_000) == [] and len(index) == 0


def test_metrics_render_prometheus_counters_with_labels() -> None:
    metrics = PipelineMetrics()
    metrics.add(Counter({("delivered", "email", "single"): 3, ("dropped", "expired"): 1}))
    metrics.inc("dropped", "expired")
    text = metrics.prometheus()
    assert 'notipipe_delivered_total{channel="email",kind="single"} 3' in text
    assert 'notipipe_dropped_total{reason="expired"} 2' in text
    assert metrics.as_dict()["dropped.expired"] == 2
