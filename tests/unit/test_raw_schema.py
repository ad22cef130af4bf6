"""The worker's raw topics build the same events as Faust's own raw serializers, minus the
registry lookups."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import pytest
from faust.types import Message

from streams.faust_ext.raw_schema import RawSchema


def _message(key: bytes | None, value: bytes | None) -> Message:
    return Message(topic="notifications.events", partition=3, offset=7, timestamp=1.5,
                   timestamp_type=0, headers=[("trace", b"t1")], key=key, value=value,
                   checksum=None)


@pytest.mark.parametrize(("key", "value"), [
    (b"user-1", b"\x00\x00\x00\x00\x01avro"), (b"user-2", None), (None, b"\xff"), (None, None)])
def test_raw_schema_builds_the_event_faust_would(key: bytes | None, value: bytes | None) -> None:
    app = faust.App("raw-schema-test", key_serializer="raw", value_serializer="raw")
    faust_decode = faust.Schema(key_serializer="raw", value_serializer="raw").compile(app)
    raw_decode = RawSchema().compile(app)
    message = _message(key, value)

    async def both() -> tuple[Any, Any]:
        return await raw_decode(message), await faust_decode(message)

    ours, faust_event = asyncio.run(both())
    assert type(ours) is type(faust_event)
    assert (ours.key, ours.value, ours.headers) == (faust_event.key, faust_event.value,
                                                    faust_event.headers)
    assert ours.message is faust_event.message is message and ours.app is app


def test_topics_with_a_raw_schema_send_keys_and_values_raw() -> None:
    app = faust.App("raw-schema-test", key_serializer="json", value_serializer="json")
    topic = app.topic("t", schema=RawSchema())
    # The app's default (json) would quote these.
    assert topic.prepare_key("user-1", None)[0] == b"user-1"
    assert topic.prepare_value("payload", None)[0] == b"payload"
    assert topic.prepare_value(b"\x00payload", None)[0] == b"\x00payload"
