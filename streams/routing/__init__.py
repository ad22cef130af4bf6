"""The pure router core, one module per concern.

``router`` (route, flush_due) composes ``dedupe``, ``policy`` (channels, mutes, defaults, digest
categories), ``quiet_hours``, ``throttle``, ``holds`` (digest/quiet/throttle holds) and
``deliveries`` (ids, rendering); ``state`` is the per-user table value; ``validation`` the
contract checks that send an event to the DLQ.
"""

from .dedupe import Position
from .deliveries import delivery_id
from .router import FlushResult, RouteResult, flush_due, next_due_ms, route
from .state import Hold, ThrottleWindow, UserState
from .validation import (
    InvalidEvent,
    InvalidPreferences,
    InvalidRecord,
    decode_event,
    decode_preferences,
    validate,
    validate_preferences,
)

__all__ = [
    "FlushResult",
    "Hold",
    "InvalidEvent",
    "InvalidPreferences",
    "InvalidRecord",
    "Position",
    "RouteResult",
    "ThrottleWindow",
    "UserState",
    "decode_event",
    "decode_preferences",
    "delivery_id",
    "flush_due",
    "next_due_ms",
    "route",
    "validate",
    "validate_preferences",
]
