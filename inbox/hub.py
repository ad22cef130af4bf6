"""Fan-out of live notifications to one instance's open feed connections, and a short memory of
them for clients that reconnect.

The memory is what makes a resume gap-free while the inbox sink lags: a delivery the feed already
pushed may not be in PostgreSQL yet when its client reconnects. A reconnecting client gets what
PostgreSQL has after its cursor plus what this memory holds after it, de-duplicated by
delivery_id. Pure and single-threaded (the event loop's); `feed.py` brings the deliveries in.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Iterable

from inbox.cursor import Cursor
from inbox.notifications import Notification

# A connection that falls this far behind is closed; its client reconnects and resumes from its
# cursor, so a slow reader costs neither memory nor deliveries.
QUEUE_LIMIT = 1000


class Subscription:
    """One open feed connection of a user."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.queue: asyncio.Queue[Notification | None] = asyncio.Queue()
        self.overflowed = False

    def offer(self, item: Notification) -> None:
        if self.overflowed:
            return
        if self.queue.qsize() >= QUEUE_LIMIT:
            self.overflowed = True
            self.queue.put_nowait(None)  # wakes the connection up to close
            return
        self.queue.put_nowait(item)

    def close(self) -> None:
        self.queue.put_nowait(None)

    async def next(self, timeout_s: float) -> Notification | None:
        """The next live notification; None when the subscription ends. TimeoutError when none
        came within `timeout_s` (the connection then sends a keep-alive)."""
        return await asyncio.wait_for(self.queue.get(), timeout_s)


class FeedHub:
    """Every in-app notification this instance saw within `window_s` (at most `max_recent` of
    them, oldest forgotten first), and the open connections to push them to."""

    def __init__(self, window_s: float, max_recent: int, clock: Callable[[], float]) -> None:
        self.window_s = window_s
        self.max_recent = max_recent
        self.clock = clock
        self._subscribers: dict[str, set[Subscription]] = {}
        # delivery_id -> (when seen, user, notification), in the order seen
        self._recent: OrderedDict[str, tuple[float, str, Notification]] = OrderedDict()
        self._recent_by_user: dict[str, dict[str, Notification]] = {}
        self.published = 0

    def subscribe(self, user_id: str) -> Subscription:
        subscription = Subscription(user_id)
        self._subscribers.setdefault(user_id, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscribers = self._subscribers.get(subscription.user_id)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[subscription.user_id]

    def connections(self) -> int:
        return sum(len(s) for s in self._subscribers.values())

    def recent_count(self) -> int:
        return len(self._recent)

    def publish(self, user_id: str, item: Notification) -> None:
        now = self.clock()
        self._recent.pop(item.delivery_id, None)
        self._recent[item.delivery_id] = (now, user_id, item)
        self._recent_by_user.setdefault(user_id, {})[item.delivery_id] = item
        self._forget(now - self.window_s)
        self.published += 1
        for subscription in self._subscribers.get(user_id, ()):
            subscription.offer(item)

    def recent(self, user_id: str, delivery_id: str) -> Notification | None:
        """A notification this instance pushed lately (it may not be stored yet)."""
        return self._recent_by_user.get(user_id, {}).get(delivery_id)

    def recent_after(self, user_id: str, cursor: Cursor) -> list[Notification]:
        return [n for n in self._recent_by_user.get(user_id, {}).values() if n.cursor > cursor]

    def close_all(self) -> None:
        for subscribers in self._subscribers.values():
            for subscription in subscribers:
                subscription.close()

    def _forget(self, horizon: float) -> None:
        while self._recent:
            delivery_id, (seen, user, _) = next(iter(self._recent.items()))
            if seen >= horizon and len(self._recent) <= self.max_recent:
                return
            del self._recent[delivery_id]
            of_user = self._recent_by_user[user]
            del of_user[delivery_id]
            if not of_user:
                del self._recent_by_user[user]


def merge_replay(stored: Iterable[Notification], recent: Iterable[Notification],
                 after: Cursor) -> list[Notification]:
    """What a resuming client missed: both sources after its cursor, each delivery once (the
    stored row wins: it carries read and archived marks), oldest first."""
    by_id = {n.delivery_id: n for n in recent if n.cursor > after}
    by_id.update((n.delivery_id, n) for n in stored if n.cursor > after)
    return sorted(by_id.values(), key=lambda n: n.cursor)


class SeenIds:
    """The delivery ids a connection has sent, bounded: the pipeline delivers at least once, so
    the same delivery can come by twice (a replayed Kafka record, a replay then the live copy)."""

    def __init__(self, limit: int = 5000) -> None:
        self.limit = limit
        self._ids: OrderedDict[str, None] = OrderedDict()

    def first_time(self, delivery_id: str) -> bool:
        if delivery_id in self._ids:
            self._ids.move_to_end(delivery_id)
            return False
        self._ids[delivery_id] = None
        if len(self._ids) > self.limit:
            self._ids.popitem(last=False)
        return True
