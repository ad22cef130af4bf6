"""Events of users whose digests are on their way to the broker wait here; everyone else's go on.

A tick flushes a few users' due holds as digests and, once the broker has acked them, saves those
users' states without the holds (flusher.py). Until then their stored states still hold what was
sent, so their events must not be routed. Making the whole router wait for the flush would hold
every event queued behind such a batch (up to ~100–135 ms at half the benchmark's maximum rate),
for collisions that are rare (55–84 events of ~58,000 per benchmark run; they grow with the share
of users who get digests).

So only those users' events wait. They are parked in arrival order, and so is every later event
of a user who has events parked, so each user's events are still routed in offset order. When
the flush ends, it routes and acks them (after a failed flush, the next router batch or tick
does). Offsets are committed only up to the first event not yet acked, so a crash replays parked
events like any other unrouted one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from typing import Generic, TypeVar

E = TypeVar("E")


class FlushParking(Generic[E]):
    def __init__(self, user_of: Callable[[E], bytes]) -> None:
        self._user_of = user_of
        self._flushing: Collection[bytes] = ()
        self._parked: list[E] = []
        self._parked_users: set[bytes] = set()
        self.idle = asyncio.Event()  # set while no flush is on its way (receipts wait for it)
        self.idle.set()

    def __len__(self) -> int:
        return len(self._parked)

    def begin_flush(self, users: Collection[bytes]) -> None:
        self._flushing = users
        self.idle.clear()

    def end_flush(self) -> None:
        self._flushing = ()
        self.idle.set()

    def flushing_any(self, users: Collection[bytes]) -> bool:
        flushing = self._flushing
        return bool(flushing) and any(user in flushing for user in users)

    def admit(self, events: list[E]) -> list[E]:
        """The events to route now, in order; the others are parked."""
        flushing, parked_users = self._flushing, self._parked_users
        if not flushing and not parked_users:
            return events
        ready = []
        for event in events:
            user = self._user_of(event)
            if user in flushing or user in parked_users:
                self._parked.append(event)
                parked_users.add(user)
            else:
                ready.append(event)
        return ready

    def release(self) -> list[E]:
        """Parked events of users no longer being flushed, in arrival order."""
        if not self._parked:
            return []
        flushing, user_of = self._flushing, self._user_of
        released, kept = [], []
        for event in self._parked:
            (kept if user_of(event) in flushing else released).append(event)
        self._parked = kept
        self._parked_users = {user_of(event) for event in kept}
        return released
