"""`notipipe lag` against the real broker, logged in as the stack's monitoring principal: exact lag
in messages, and in seconds what that principal can know (the production rate, not a record)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition

from stack.settings import StackSettings
from tests.integration.kafka_clients import admin_config


def _lag(settings: StackSettings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NOTIPIPE_BOOTSTRAP_SERVERS": settings.bootstrap_servers}
    return subprocess.run([sys.executable, "-m", "streams.cli", "lag", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def _group_behind(settings: StackSettings, topic: str) -> str:
    """A group committed at offset 1 of a topic with 4 records: 3 behind."""
    producer = Producer(admin_config(settings))
    for i in range(4):
        producer.produce(topic, key=b"k", value=f"v{i}".encode())
    assert producer.flush(30) == 0
    group = f"lagtest-{uuid.uuid4().hex[:8]}"
    consumer = Consumer({**admin_config(settings), "group.id": group, "enable.auto.commit": False})
    consumer.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
    consumer.close()
    return group


def test_lag_reports_messages_exactly_and_no_age_it_cannot_know(
        settings: StackSettings, fresh_topic: str) -> None:
    """As the monitoring principal (DESCRIBE only), the waiting record cannot be read; with
    nothing produced meanwhile there is no rate to estimate its age from either."""
    group = _group_behind(settings, fresh_topic)
    result = _lag(settings, "--group", group, "--all-topics", "--json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["group"], r["topic"], r["partition"], r["committed"], r["end"], r["lag"],
             r["lag_seconds"]) for r in rows] == [(group, fresh_topic, 0, 1, 4, 3, None)]

    table = _lag(settings, "--group", group, "--all-topics")
    assert f"{group} {fresh_topic}: lag 3 messages, oldest waiting ?" in table.stdout, table.stdout


def test_lag_in_seconds_comes_from_the_production_rate(settings: StackSettings, fresh_topic: str) -> None:
    group = _group_behind(settings, fresh_topic)
    stop = threading.Event()

    def produce_steadily() -> None:  # the topic keeps being written while the command samples it
        producer = Producer(admin_config(settings))
        while not stop.is_set():
            producer.produce(fresh_topic, key=b"k", value=b"more")
            producer.flush(5)
            stop.wait(0.05)

    writer = threading.Thread(target=produce_steadily, daemon=True)
    writer.start()
    try:
        result = _lag(settings, "--group", group, "--all-topics", "--json")
    finally:
        stop.set()
        writer.join(10)
    assert result.returncode == 0, result.stderr
    [row] = [json.loads(line) for line in result.stdout.splitlines()]
    assert row["estimated"] is True and row["lag"] >= 3
    assert row["lag_seconds"] is not None and row["lag_seconds"] > 0
