"""The pre-commit flush on the real broker while the worker goes on sending faster than the broker
acknowledges (a producer quota slows the acknowledgements, as a broker restarting on a busy
machine does): it waits for every record sent before it began, and returns although the
producer's queue never empties. A flush waiting for an empty queue never returned there: a worker
ended that way during a rolling restart of the brokers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from stack.artifacts import check_java
from stack.cli import write_client_config
from stack.schemas_setup import registry_client
from stack.settings import StackSettings
from streams.contracts.avro_codec import AvroCodec
from streams.worker.delivery_producer import DeliveryProducer
from tests.integration.kafka_clients import admin_config
from tests.waiting import wait_for_async

CLIENT_ID = "flush-test"
PARTITIONS = 4
QUOTA_BYTES_PER_S = 50_000
RECORD = 100  # bytes of random value: lz4 cannot shrink it under the quota
PER_TICK, TICK_S = 20, 0.01  # ~2,000 records (~250 KB) a second: more than the quota lets through
BACKLOG = 500  # records waiting for their acknowledgement when the flush begins


@contextlib.contextmanager
def producer_quota(settings: StackSettings, client_id: str) -> Iterator[None]:
    """A producer byte-rate quota on a client id, set and removed with Kafka's own tool."""
    config = write_client_config(settings, "admin")

    def configs(*change: str) -> None:
        tool = subprocess.run(
            [check_java(), "-cp", str(settings.dist_dir / "kafka" / "libs" / "*"),
             "kafka.admin.ConfigCommand", "--bootstrap-server", settings.bootstrap_servers,
             "--command-config", str(config), "--alter", *change,
             "--entity-type", "clients", "--entity-name", client_id],
            capture_output=True, text=True, timeout=120)
        assert tool.returncode == 0, tool.stderr[-2000:]

    configs("--add-config", f"producer_byte_rate={QUOTA_BYTES_PER_S}")
    try:
        yield
    finally:
        configs("--delete-config", "producer_byte_rate")


@pytest.fixture
def topic(settings: StackSettings, admin: AdminClient) -> Iterator[str]:
    name = f"flush-{uuid.uuid4().hex[:8]}"
    new = NewTopic(name, num_partitions=PARTITIONS, replication_factor=settings.replication_factor)
    admin.create_topics([new])[name].result(30)
    yield name
    admin.delete_topics([name])[name].result(30)


def test_the_commit_flush_waits_for_what_was_sent_before_it_while_sending_goes_on(
        settings: StackSettings, topic: str) -> None:
    producer = DeliveryProducer(admin_config(settings), AvroCodec(registry_client(settings)), {},
                                client_id=CLIENT_ID)
    producer.flush_timeout_s = 60  # past this the flush raises DeliveryProduceError
    acked: set[int] = set()
    sent = 0
    stop = asyncio.Event()

    async def keep_sending() -> None:
        nonlocal sent
        while not stop.is_set():
            for _ in range(PER_TICK):
                producer.send_raw(topic, sent % PARTITIONS, b"key", os.urandom(RECORD),
                                  lambda _p, _o, n=sent: acked.add(n))
                sent += 1
            producer.poll()
            await asyncio.sleep(TICK_S)

    async def flush_under_load() -> tuple[int, int, int]:
        sender = asyncio.create_task(keep_sending())
        try:
            # The quota has started to hold acknowledgements back: a backlog builds up.
            await wait_for_async(lambda: sent - len(acked) >= BACKLOG, 60,
                                 f"{BACKLOG} records sent and not yet acknowledged")
            before = sent
            await producer.flush_for_commit()
            return before, sent, len(acked)
        finally:
            stop.set()
            await sender

    # The changelog producer's client id (DeliveryProducer names its two producers).
    with producer_quota(settings, f"{CLIENT_ID}-changelog"):
        before, after, acked_at_return = asyncio.run(flush_under_load())
    assert set(range(before)) <= acked, "the flush returned before the broker had them all"
    assert after > before  # records went on being sent while the flush waited ...
    assert acked_at_return < after  # ... and some were still unacknowledged when it returned
