"""The pure router core, one module per concern.

``router`` (route, flush_due) composes ``dedupe``, ``policy`` (channels, mutes, defaults, digest
categories), ``quiet_hours``, ``throttle``, ``holds`` (digest/quiet/throttle holds) and
``deliveries`` (ids, rendering) and ``fallback`` (fallback chains, joined with receipts);
``state`` is the per-user table value; ``validation`` the contract checks that send a record to
the DLQ.
"""

from streams.core.routing.dedupe import Position
from streams.core.routing.deliveries import delivery_id
from streams.core.routing.router import FlushResult, RouteResult, flush_due, next_due_ms, route
from streams.core.routing.state import Hold, ThrottleWindow, UserState
from streams.core.routing.validation import (
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
