"""The dangerous path of the framework extensions, on the real broker: Faust commits an event's
offset only once the worker's own producer has that event's deliveries and changelog record
acknowledged (streams/faust_ext/commit_hook.py). Were the order ever lost (a Faust upgrade, a
changed hook), offsets would be committed ahead of unacknowledged deliveries, and a crash would
lose them.

Acknowledgements are held back by deleting the delivery topic for a moment: librdkafka keeps the
records queued until the topic is back (a single broker caps `min.insync.replicas` at the
replica count, so that cannot hold them). A producer failure is made by shrinking a topic's
`max.message.bytes` (a permanent error).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from streams.client.sdk import DeliveryReader, NotificationClient, now_ms
from streams.contracts.schemas import subject_for
from streams.core.model import Channel, Event
from tests.integration.kafka_clients import admin_config
from tests.integration.pipeline import PipelineEnv, Watcher, WorkerProcess, wait_until_routing
from tests.waiting import wait_for

ROUTER_ENV = {"NOTIPIPE_DEFAULT_CHANNELS": "in_app"}


@contextmanager
def topic_config(env: PipelineEnv, topic: str, name: str, value: str) -> Iterator[None]:
    """Set one config of a topic for the duration of the block (then delete the override)."""
    admin = AdminClient(admin_config(env.stack))

    def alter(op: AlterConfigOpType) -> None:
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
            ConfigEntry(name, value, incremental_operation=op)])
        for future in admin.incremental_alter_configs([resource]).values():
            future.result(30)

    alter(AlterConfigOpType.SET)
    try:
        yield
    finally:
        alter(AlterConfigOpType.DELETE)


@contextmanager
def topic_away(env: PipelineEnv, topic: str) -> Iterator[None]:
    """Delete a topic for the duration of the block, then create it again as it was."""
    admin = AdminClient(admin_config(env.stack))
    partitions = len(admin.list_topics(topic, timeout=10).topics[topic].partitions)
    admin.delete_topics([topic])[topic].result(30)
    wait_for(lambda: topic not in admin.list_topics(timeout=10).topics, 30, f"{topic} to be gone")
    try:
        yield
    finally:
        admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)


def delivered_to(env: PipelineEnv, user: str) -> list[list[str]]:
    """The user's in-app deliveries, read afresh from the topic (it may have been re-created)."""
    reader = DeliveryReader(env.client_settings, ["in_app"], from_beginning=True)
    found: list[list[str]] = []
    try:
        def arrived() -> bool:
            delivery = reader.poll(0.5)
            if delivery is not None and delivery.user_id == user:
                found.append(list(delivery.event_ids))
            return bool(found)
        wait_for(arrived, 60, f"a delivery for {user}", interval_s=0)
        return found
    finally:
        reader.close()


def send_one(env: PipelineEnv, client: NotificationClient, user: str) -> tuple[str, int, int]:
    """One immediate in-app event; returns its id, partition and offset on the events topic."""
    event = Event(event_id=str(uuid.uuid4()), user_id=user, category="billing", occurred_at=now_ms(),
                  title="t", body="b", channels=(Channel.IN_APP,))
    value = client.codec.encode(subject_for(client.events_topic), event.to_avro())
    producer = Producer({**admin_config(env.stack),
                         "partitioner": "murmur2_random", "enable.idempotence": True})
    written: list = []
    producer.produce(client.events_topic, key=user.encode(), value=value,
                     on_delivery=lambda err, msg: written.append((err, msg.partition(), msg.offset())))
    assert producer.flush(30) == 0 and written[0][0] is None, written
    return event.event_id, written[0][1], written[0][2]


def committed(env: PipelineEnv, partition: int) -> int:
    consumer = Consumer({**admin_config(env.stack),
                         "group.id": f"{env.prefix}router", "enable.auto.commit": False})
    try:
        topic = f"{env.prefix}notifications.events"
        return consumer.committed([TopicPartition(topic, partition)], timeout=10)[0].offset
    finally:
        consumer.close()


def _flushes(worker: WorkerProcess) -> tuple[int, int]:
    """(pre-commit flushes started, of which still waiting for the broker)."""
    counters = worker.counters()
    started = counters.get("commit_flushes.started", 0)
    ended = counters.get("commit_flushes.done", 0) + counters.get("commit_flushes.failed", 0)
    return started, started - ended


def _route_while_held(env: PipelineEnv, worker: WorkerProcess, client: NotificationClient,
                      user: str) -> tuple[str, int, int]:
    """Send an event while acknowledgements are held back; return once a commit that must cover
    it is waiting for them, having checked that its offset is not committed."""
    routed = worker.counter("events.routed")
    started_before, _ = _flushes(worker)
    event_id, partition, offset = send_one(env, client, user)
    wait_for(lambda: worker.counter("events.routed") == routed + 1, 30, "the event to be routed")
    # The positive marker: a commit began since the event was sent and is waiting for the broker
    # (only the event's delivery can keep it waiting: everything before it was acknowledged).
    wait_for(lambda: (flushes := _flushes(worker))[0] > started_before and flushes[1] >= 1, 30,
             "a commit to wait for the broker")
    assert committed(env, partition) <= offset, "the offset was committed before the broker acked"
    return event_id, partition, offset


def test_no_offset_is_committed_past_deliveries_the_broker_has_not_acknowledged(
        worker: WorkerProcess, client: NotificationClient, pipeline_env: PipelineEnv) -> None:
    topic = f"{pipeline_env.prefix}notifications.deliveries.in_app"
    user = f"cs-{uuid.uuid4().hex[:8]}"
    with topic_away(pipeline_env, topic):
        event_id, partition, offset = _route_while_held(pipeline_env, worker, client, user)
    # The topic is back: the queued delivery lands, and only then the commit.
    assert delivered_to(pipeline_env, user) == [[event_id]]
    wait_for(lambda: committed(pipeline_env, partition) > offset, 60, "the commit past the event")


@pytest.mark.parametrize("failing", ["deliveries", "changelog"])
def test_a_failed_record_is_never_committed_past_and_its_event_arrives_after_a_restart(
        failing: str, worker: WorkerProcess, client: NotificationClient, watcher: Watcher,
        pipeline_env: PipelineEnv) -> None:
    topic = (f"{pipeline_env.prefix}notifications.deliveries.in_app" if failing == "deliveries"
             else f"{pipeline_env.prefix}router-users-changelog")
    user = f"cs-{uuid.uuid4().hex[:8]}"
    with topic_config(pipeline_env, topic, "max.message.bytes", "16"):
        event_id, partition, offset = send_one(pipeline_env, client, user)
        wait_for(lambda: (worker.counters_if_up() or {}).get("commit_flushes.failed", 0) > 0
                 or worker.proc.poll() is not None, 60, "the failed record to fail the commit")
        assert committed(pipeline_env, partition) <= offset
    worker.kill()
    worker.start()
    wait_until_routing(worker, client, watcher)
    assert delivered_to(pipeline_env, user) == [[event_id]]
    wait_for(lambda: committed(pipeline_env, partition) > offset, 60, "the commit past the event")
