"""The worker's Faust app is built with the worker's overrides in place: the real ``Worker``
(offline_pipeline.py), its consumer on a stand-in broker (fake_broker.py)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from fake_broker import EV0, EV1, FakeBroker, connect, draining, offsets, queued, raw_topic, subscribe
from offline_pipeline import offline_pipeline

from streams.worker.app import Worker
from streams.worker.delivery_producer import DeliveryProduceError
from tests.waiting import wait_for_async


@pytest.fixture
def pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Worker:
    built = offline_pipeline(tmp_path, monkeypatch)
    built.deliveries.flush_timeout_s = 0.3  # nothing is ever acked: fail fast
    return built


def test_fausts_pre_commit_flush_waits_for_the_users_changelog_records(
        pipeline: Worker) -> None:
    """Faust commits offsets only after its producer's flush returns (test_delivery_producer.py);
    in the worker that flush includes the librdkafka producer, which the users table's changelog
    records go through."""
    pipeline.users.set_raw(0, b"ann", b'{"v":1}')
    with pytest.raises(DeliveryProduceError, match="0 deliveries and 1 changelog records sent before"):
        asyncio.run(pipeline.app.producer.flush())


def test_the_worker_tables_share_its_rocksdb_budget(pipeline: Worker) -> None:
    for n in range(1_000):
        pipeline.users.set_raw(n % 2, b"user-%d" % n, os.urandom(500))
    assert pipeline.rocksdb_memory.usage()["memtables"] > 250_000


def test_the_worker_consumer_holds_records_in_a_rebalance_and_reads_fresh_partitions_again(
        pipeline: Worker) -> None:
    """The consumer class and the seek of never-committed partitions, as the worker installs
    them (test_lean_consumer.py and test_fresh_partition_seek.py test them in detail)."""

    async def scenario() -> None:
        app = pipeline.app
        events = raw_topic(app, "notifications.events")  # stands in for the router agent's stream
        broker = FakeBroker()
        broker.append(EV0, 3)  # never committed
        broker.append(EV1, 3)
        broker.committed[EV1] = 1
        consumer = connect(app, broker, [EV0, EV1], [events])
        await subscribe(app, [EV0, EV1])
        app.on_rebalance_start()
        async with draining(consumer):
            await wait_for_async(broker.consumer_came_back, 5, "the fetch handled")
            assert queued(events) == []
            app.on_rebalance_end()
            await wait_for_async(lambda: len(queued(events)) == 5, 5, "the records read again")
        assert sorted(offsets(events)) == [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2)]

    asyncio.run(scenario())



def test_the_worker_faust_producer_writes_with_acks_all_and_idempotence(pipeline: Worker) -> None:
    """Its DLQ records, ticks and preferences changelog: a retried batch is not written twice."""
    settings = pipeline.app.producer._settings_extra()
    assert (settings["acks"], settings["enable_idempotence"]) == ("all", True)


def test_the_worker_deliveries_and_changelog_producers_write_with_acks_all_and_idempotence(
        pipeline: Worker) -> None:
    """librdkafka's two producers (deliveries; the users table's changelog), as the worker
    composes them."""
    for name, config in pipeline.deliveries.configs.items():
        assert (config["acks"], config["enable.idempotence"]) == ("all", True), name
    assert set(pipeline.deliveries.configs) == {"deliveries", "changelog"}


def test_faust_makes_the_changelogs_as_replicated_as_the_events_topic(tmp_path: Path) -> None:
    """Faust creates the tables' changelog topics with `topic_replication_factor`: the worker sets
    it from the events topic (topology.py), 3 on a replicated cluster."""
    from offline_pipeline import NO_BROKER

    from streams.connection.kafka import KafkaAccess
    from streams.contracts.topics import Topics
    from streams.worker.app import faust_app
    from streams.worker.settings import WorkerSettings
    from streams.worker.topology import Topology

    settings = WorkerSettings.from_env({"NOTIPIPE_DATA_DIR": str(tmp_path),
                                        "NOTIPIPE_BOOTSTRAP_SERVERS": NO_BROKER})
    topics = Topics("")
    for replicas in (1, 3):
        topology = Topology(topics, topics.ticks(settings.app_id), 4, replication_factor=replicas)
        app = faust_app(settings, topology, KafkaAccess(NO_BROKER, security_protocol="PLAINTEXT"))
        assert app.conf.topic_replication_factor == replicas


def test_a_stopping_worker_waits_for_its_agents_at_most_stop_wait_s(pipeline: Worker) -> None:
    from streams.faust_ext.bounded_stop import BoundedStopConsumer
    from streams.worker.settings import WorkerSettings

    consumer_class = type(pipeline.app.consumer)
    assert issubclass(consumer_class, BoundedStopConsumer)
    assert consumer_class.stop_wait_s == WorkerSettings().stop_wait_s
