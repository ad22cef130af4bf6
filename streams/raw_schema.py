"""A Faust schema for topics whose keys and values stay bytes, decoded without the serializer
registry.

Faust turns every consumed record into an event through its topic's schema: a key and a value
each looked up and "decoded" through the serializer registry, even for the raw codec, which
returns the bytes it was given. On the events topic that was ~6 % of the worker's main-thread
time in a burst (py-spy, 2026-11-26). Here the event is built straight from the record: the
same key, value, headers and message Faust would have put in it.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.types import AppT, Message

RAW = "raw"


class RawSchema(faust.Schema):
    """Raw key and value serializers; decoding a record is creating its event."""

    def __init__(self) -> None:
        super().__init__(key_serializer=RAW, value_serializer=RAW)

    def compile(self, app: AppT, **_: Any) -> Any:
        # Faust's raw codec cannot fail on bytes or None, so there are no decode errors to route.
        create_event = app.create_event

        async def decode(message: Message, *, propagate: bool = False) -> Any:
            return create_event(message.key, message.value, message.headers, message)

        return decode
