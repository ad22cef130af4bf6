"""The worker's consumer passes its fetch sizes to the aiokafka consumer Faust builds."""

import asyncio

import faust
import pytest

from streams.core.settings import ConfigError
from streams.faust_ext.consumer import LeanDrainConsumer
from streams.worker.settings import WorkerSettings


def _aiokafka_fetch_settings(consumer_class: type) -> tuple[int, int]:
    async def build() -> tuple[int, int]:
        app = faust.App("fetch-tuning-test", broker="kafka://127.0.0.1:1", store="memory://")
        app.transport.Consumer = consumer_class
        aio = app.consumer._thread._create_worker_consumer(app.transport)  # not started: no I/O
        try:
            return aio._fetch_min_bytes, aio._fetch_max_wait_ms
        finally:
            await aio.stop()

    return asyncio.run(build())


def test_fetch_sizes_reach_the_aiokafka_consumer():
    assert _aiokafka_fetch_settings(LeanDrainConsumer.with_fetch(65536, 7)) == (65536, 7)


def test_defaults_are_fausts():
    assert _aiokafka_fetch_settings(LeanDrainConsumer) == (1, 1500)


def test_worker_defaults_batch_fetches():
    ws = WorkerSettings.from_env({})
    assert (ws.fetch_min_bytes, ws.fetch_max_wait_ms) == (65536, 25)


def test_fetch_settings_from_the_environment():
    ws = WorkerSettings.from_env({"NOTIPIPE_FETCH_MIN_BYTES": "32768", "NOTIPIPE_FETCH_MAX_WAIT_MS": "10"})
    assert (ws.fetch_min_bytes, ws.fetch_max_wait_ms) == (32768, 10)
    with pytest.raises(ConfigError, match="NOTIPIPE_FETCH_MIN_BYTES"):
        WorkerSettings.from_env({"NOTIPIPE_FETCH_MIN_BYTES": "0"})
    with pytest.raises(ConfigError, match="NOTIPIPE_FETCH_MAX_WAIT_MS"):
        WorkerSettings.from_env({"NOTIPIPE_FETCH_MAX_WAIT_MS": "soon"})
