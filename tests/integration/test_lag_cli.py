"""`notipipe lag` against the real broker: a group that committed offset 1 of a topic holding four
records written an hour ago has three records of lag, the oldest waiting an hour."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition

from stack.settings import StackSettings

HOUR_MS = 3_600_000


def _lag(settings: StackSettings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NOTIPIPE_BOOTSTRAP_SERVERS": settings.bootstrap_servers}
    return subprocess.run([sys.executable, "-m", "streams.cli", "lag", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def test_lag_reports_messages_and_the_age_of_the_oldest_waiting_record(
        settings: StackSettings, fresh_topic: str) -> None:
    written_at = int(time.time() * 1000) - HOUR_MS
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    for i in range(4):
        producer.produce(fresh_topic, key=b"k", value=f"v{i}".encode(), timestamp=written_at + i * 1000)
    assert producer.flush(30) == 0
    group = f"lagtest-{uuid.uuid4().hex[:8]}"
    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": group,
                         "enable.auto.commit": False})
    consumer.commit(offsets=[TopicPartition(fresh_topic, 0, 1)], asynchronous=False)
    consumer.close()

    result = _lag(settings, "--group", group, "--all-topics", "--json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["group"], r["topic"], r["partition"], r["committed"], r["end"], r["lag"]) for r in rows] == [
        (group, fresh_topic, 0, 1, 4, 3)]
    # The record at the committed offset (offset 1) was written an hour ago plus one second.
    waited_ms = rows[0]["lag_seconds"] * 1000
    assert HOUR_MS - 1000 <= waited_ms < HOUR_MS + 600_000, rows[0]

    table = _lag(settings, "--group", group, "--all-topics")
    assert f"{group} {fresh_topic}: lag 3 messages, oldest waiting" in table.stdout, table.stdout
