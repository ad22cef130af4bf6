"""Pure parts of the worker: its settings, the due index, the metrics rendering."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from streams.core.routing.state import UserState
from streams.core.settings import ConfigError
from streams.worker.due_index import DueIndex
from streams.worker.metrics import Histogram, PipelineMetrics
from streams.worker.settings import WorkerSettings
from streams.worker.state_cache import OBJECT_BYTES_PER_JSON_BYTE, StateCache
from streams.worker.tick_rotation import TickRotation


def test_worker_settings_defaults_and_overrides() -> None:
    default = WorkerSettings.from_env({})
    assert (default.web_port, default.tick_interval_s, default.app_id) == (6066, 1.0, "notipipe-router")
    assert default.data_dir.name == "notipipe-router-6066" and default.state_cache_users == 20_000
    assert (default.state_cache_mb, default.rocksdb_memory_mb) == (128, 256)
    assert (default.prefs_cache_users, default.delivery_linger_ms) == (200_000, 1)
    custom = WorkerSettings.from_env({"NOTIPIPE_WEB_PORT": "7000", "NOTIPIPE_APP_ID": "r2",
                                      "NOTIPIPE_CLOCK_FILE": "/tmp/c.json",
                                      "NOTIPIPE_PREFS_CACHE_USERS": "0",
                                      "NOTIPIPE_DELIVERY_LINGER_MS": "5"})
    assert custom.data_dir.name == "r2-7000" and custom.clock_file == Path("/tmp/c.json")
    assert (custom.prefs_cache_users, custom.delivery_linger_ms) == (0, 5)


@pytest.mark.parametrize(("name", "value"), [
    ("NOTIPIPE_WEB_PORT", "http"), ("NOTIPIPE_WEB_PORT", "80"), ("NOTIPIPE_WEB_PORT", "7000.5"),
    ("NOTIPIPE_TICK_INTERVAL_S", "0"), ("NOTIPIPE_SESSION_TIMEOUT_S", "1"),
    ("NOTIPIPE_BATCH_MAX", "0"), ("NOTIPIPE_BATCH_MAX", "10.5"), ("NOTIPIPE_LOG_LEVEL", "loud"),
    ("NOTIPIPE_STATE_CACHE_USERS", "-1"), ("NOTIPIPE_STATE_CACHE_USERS", "many"),
    ("NOTIPIPE_STATE_CACHE_MB", "0"), ("NOTIPIPE_ROCKSDB_MEMORY_MB", "8"),
    ("NOTIPIPE_PREFS_CACHE_USERS", "-5"), ("NOTIPIPE_PREFS_CACHE_USERS", "1e9"),
    ("NOTIPIPE_DELIVERY_LINGER_MS", "-1"), ("NOTIPIPE_DELIVERY_LINGER_MS", "2.5")])
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


def test_due_index_pops_the_earliest_due_keys_up_to_a_limit() -> None:
    index = DueIndex()
    for key in [b"c", b"a", b"d", b"b"]:
        index.set(0, key, 100 + 10 * "abcd".index(key.decode()))
    assert index.pop_due(0, 1000, limit=3) == [b"a", b"b", b"c"]
    assert index.pop_due(0, 1000, limit=3) == [b"d"]
    assert index.pop_due(0, 1000, limit=3) == []


def test_metrics_render_prometheus_counters_with_labels() -> None:
    metrics = PipelineMetrics()
    metrics.add(Counter({("delivered", "email", "single"): 3, ("dropped", "expired"): 1}))
    metrics.inc("dropped", "expired")
    text = metrics.prometheus()
    assert 'notipipe_delivered_total{channel="email",kind="single"} 3' in text
    assert 'notipipe_dropped_total{reason="expired"} 2' in text
    assert metrics.as_dict()["dropped.expired"] == 2


def test_age_histogram_renders_cumulative_prometheus_buckets() -> None:
    ages = Histogram("notipipe_event_age_at_routing_seconds", "age")
    for age in (0.004, 0.005, 0.0051, 0.3, 75.0, -2.0):  # a bound itself counts in its bucket
        ages.observe(age)
    lines = dict(line.rsplit(" ", 1) for line in ages.prometheus().splitlines()
                 if not line.startswith("#"))
    name = "notipipe_event_age_at_routing_seconds"
    assert lines[f'{name}_bucket{{le="0.005"}}'] == "3"  # 0.004, 0.005 and the negative one as 0
    assert lines[f'{name}_bucket{{le="0.01"}}'] == "4"
    assert lines[f'{name}_bucket{{le="0.25"}}'] == "4"
    assert lines[f'{name}_bucket{{le="0.5"}}'] == "5"
    assert lines[f'{name}_bucket{{le="60.0"}}'] == "5"  # 75 s is above every bound
    assert lines[f'{name}_bucket{{le="+Inf"}}'] == lines[f"{name}_count"] == "6"
    assert float(lines[f"{name}_sum"]) == pytest.approx(0.004 + 0.005 + 0.0051 + 0.3 + 75.0)


def test_state_cache_keeps_the_most_recently_used_users_and_forgets_on_request() -> None:
    cache = StateCache(max_users=2)
    a, b, c = UserState("a"), UserState("b"), UserState("c")
    cache.put(b"a", a, 10)
    cache.put(b"b", b, 10)
    assert cache.get(b"a") is a  # a is now the most recently used: b goes first
    cache.put(b"c", c, 10)
    assert cache.get(b"b") is None and cache.get(b"a") is a and cache.get(b"c") is c
    assert (cache.hits, cache.misses) == (3, 1)
    cache.discard([b"a", b"unknown"])
    assert cache.get(b"a") is None and len(cache) == 1
    cache.clear()
    assert len(cache) == 0 and cache.estimated_bytes == 0


def test_state_cache_of_size_zero_keeps_nothing() -> None:
    cache = StateCache(max_users=0)
    cache.put(b"a", UserState("a"), 10)
    assert cache.get(b"a") is None and len(cache) == 0


def test_state_cache_bounds_the_estimated_memory_of_growing_states() -> None:
    f = OBJECT_BYTES_PER_JSON_BYTE  # a budget of 250 × f bytes holds 250 bytes of JSON
    cache = StateCache(max_users=100, max_bytes=250 * f)
    for name in (b"a", b"b", b"c"):
        cache.put(name, UserState(name.decode()), 80)
    assert len(cache) == 3 and cache.estimated_bytes == 240 * f
    cache.get(b"a")  # b is now the least recently used
    cache.resize(b"c", 120)  # c grew with its batch: b must make room
    assert cache.get(b"b") is None and len(cache) == 2 and cache.estimated_bytes == 200 * f
    cache.resize(b"a", 10)  # shrinking evicts nothing
    assert len(cache) == 2 and cache.estimated_bytes == 130 * f
    cache.resize(b"gone", 5000)  # not cached: nothing to charge
    assert cache.estimated_bytes == 130 * f
    cache.put(b"huge", UserState("huge"), 300)  # over the whole budget: not kept, evicts nothing
    assert cache.get(b"huge") is None and len(cache) == 2 and cache.estimated_bytes == 130 * f
    cache.resize(b"c", 260)  # a cached state that outgrew the whole budget is dropped
    assert cache.get(b"c") is None and cache.estimated_bytes == 10 * f
    cache.discard([b"a"])
    assert len(cache) == 0 and cache.estimated_bytes == 0


def test_ticks_go_to_the_owned_partitions_in_turn() -> None:
    rotation = TickRotation(partitions=4)  # the timer fires 4 times per tick interval
    assert [rotation.next([0, 1, 2, 3]) for _ in range(8)] == [0, 1, 2, 3, 0, 1, 2, 3]
    assert rotation.next([]) is None  # nothing owned during a rebalance


def test_a_worker_owning_some_partitions_ticks_each_once_per_interval() -> None:
    rotation = TickRotation(partitions=4)
    ticked = [rotation.next([1, 3]) for _ in range(8)]  # two intervals' firings
    assert [p for p in ticked if p is not None] == [1, 3, 1, 3]
    assert ticked.count(None) == 4  # every other firing: spread, not two at once
