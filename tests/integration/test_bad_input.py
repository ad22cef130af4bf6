"""Producer-side bad input on the real stack: a field over its documented maximum is refused by the
SDK and the CLI, and dead-lettered with the reason by the router when it comes from a producer
that skipped the check; a record larger than its topic takes is refused before it is sent, naming
the limit and by how much (instead of librdkafka's MSG_SIZE_TOO_LARGE)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from streams.client.sdk import NotificationClient, RecordTooLarge
from streams.contracts.schemas import subject_for
from streams.core.model import Event
from streams.core.routing.validation import InvalidEvent
from tests.integration.kafka_clients import admin_config
from tests.integration.pipeline import PipelineEnv
from tests.waiting import wait_for

ROUTER_ENV = {"NOTIPIPE_DEFAULT_CHANNELS": "in_app"}


def _cli(env: PipelineEnv, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args], capture_output=True, text=True, timeout=120,
        env={**os.environ, "NOTIPIPE_TOPIC_PREFIX": env.prefix,
             "NOTIPIPE_BOOTSTRAP_SERVERS": env.stack.bootstrap_servers,
             "NOTIPIPE_REGISTRY_URL": env.stack.registry_url})


def test_the_cli_refuses_a_body_over_its_maximum_and_says_by_how_much(pipeline_env) -> None:
    result = _cli(pipeline_env, "send", "--user", "u1", "--category", "news", "--title", "t",
                  "--body", "b" * 10_001)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: body_too_long: body has 10,001 characters, 1 over its "
                                     "maximum of 10,000")


def test_a_body_over_its_maximum_from_another_producer_is_dead_lettered_with_the_reason(
        worker, client: NotificationClient, watcher, pipeline_env) -> None:
    user = f"big-{uuid.uuid4().hex[:8]}"
    oversized = Event(event_id=f"{user}-1", user_id=user, category="news",
                      occurred_at=1_800_000_000_000, title="t", body="b" * 10_001)
    with pytest.raises(InvalidEvent, match="body_too_long"):
        client.send_event(oversized)  # the SDK refuses it...
    # ...a producer that does not check writes it all the same.
    value = client.codec.encode(subject_for(client.events_topic), oversized.to_avro())
    client.send_raw(client.events_topic, user, value)
    after = client.send(user_id=user, category="news", title="t", body="fine")
    client.flush()
    assert [list(d.event_ids) for d in watcher.wait_for_user(user, 1)] == [[after]]
    record, headers = wait_for(
        lambda: next((dl for dl in watcher.dead_letters if dl[0]["key"] == user.encode()), None),
        20, "the dead letter")
    assert record["reason"] == "invalid" and record["value"] == value
    assert record["error"] == "body_too_long: body has 10,001 characters, 1 over its maximum of 10,000"
    assert headers["notipipe.error.reason"] == b"invalid"


@pytest.fixture
def small_events_topic(pipeline_env: PipelineEnv):
    """The module's events topic takes records of at most 20,000 bytes for the test."""
    admin = AdminClient(admin_config(pipeline_env.stack))
    topic = f"{pipeline_env.prefix}notifications.events"

    def set_limit(value: str | None) -> None:
        op = AlterConfigOpType.SET if value else AlterConfigOpType.DELETE
        entry = ConfigEntry("max.message.bytes", value or "", incremental_operation=op)
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[entry])
        for future in admin.incremental_alter_configs([resource]).values():
            future.result(30)

    set_limit("20000")
    yield topic
    set_limit(None)


def test_a_record_over_the_topics_limit_is_refused_before_it_is_sent(pipeline_env,
                                                                     small_events_topic) -> None:
    body = "\U0001F600" * 6_000  # within the body's 10,000 characters, 24 KB encoded
    result = _cli(pipeline_env, "send", "--user", "u1", "--category", "news", "--title", "t",
                  "--body", body)
    assert result.returncode == 2, result.stderr
    assert f"over the max.message.bytes of topic {small_events_topic}, 20,000 bytes" in result.stderr
    assert "its largest fields: body 6,000 characters" in result.stderr
    client = NotificationClient(pipeline_env.client_settings)
    with pytest.raises(RecordTooLarge) as info:
        client.send(user_id="u1", category="news", title="t", body=body)
    size = int(str(info.value).split(" is ")[1].split(" bytes")[0].replace(",", ""))
    assert f"{size - 20_000:,} bytes over" in str(info.value)
