"""Which event Faust's tables write through, set by the router itself.

Replaces: ``faust.streams._current_event``, the context variable behind ``faust.current_event()``.
Faust's stream iterator sets it for each event it yields, and a table write goes to the changelog
partition of that event (tables are co-partitioned with their topics). The router takes whole
batches from the stream's queue (``queued_events.py``), so it points the variable at an event of
the partition whose users it is about to change.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from faust.streams import _current_event


def point_at(event: Any) -> None:
    """Table writes from here on go to ``event``'s partition (Faust holds it by weak reference)."""
    _current_event.set(weakref.ref(event))


@contextmanager
def kept() -> Iterator[None]:
    """Restore the caller's current event afterwards (a flush routes parked events in between)."""
    previous = _current_event.get(None)
    try:
        yield
    finally:
        _current_event.set(previous)
