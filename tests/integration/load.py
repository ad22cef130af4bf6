"""A steady flow of events from a thread, for tests that disturb the pipeline while it runs."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import defaultdict

from streams.client.sdk import NotificationClient
from tests.integration.pipeline import Watcher


class Load:
    """Sends a steady mix of immediate events, digest-category events and repeated ids (a producer
    retrying), and remembers every distinct event it sent, in order."""

    def __init__(self, client: NotificationClient, users: list[str], events_per_s: float,
                 digest_category: str = "social.like") -> None:
        self.client, self.users = client, users
        self.events_per_s = events_per_s
        self.digest_category = digest_category
        self.sent: dict[str, str] = {}  # event_id -> user, in sending order
        self._lock = threading.Lock()  # `sent` is read while the thread adds to it
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._random = random.Random(7)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def count(self) -> int:
        return len(self.sent)

    def stop(self) -> None:
        """Stop sending, and wait until the broker has acknowledged every event (DeliveryFailed
        otherwise: an event the producer lost)."""
        self._stop.set()
        self._thread.join(30)
        self.client.flush(120)

    def _run(self) -> None:
        pace = 1 / self.events_per_s
        next_at = time.monotonic()
        while not self._stop.is_set():
            user = self._random.choice(self.users)
            if self.sent and self._random.random() < 0.05:  # a producer retry: same id again
                with self._lock:
                    event_id = self._random.choice(list(self.sent))
                user = self.sent[event_id]
            else:
                event_id = str(uuid.uuid4())
            category = self.digest_category if self._random.random() < 0.3 else "billing"
            self.client.send(user_id=user, category=category, title="t", body="b",
                             event_id=event_id)
            with self._lock:
                self.sent[event_id] = user
            next_at += pace
            self._stop.wait(max(0.0, next_at - time.monotonic()))


def delivery_ids_by_event(watcher: Watcher, users: list[str]) -> dict[str, set[str]]:
    """Every event id the users' deliveries carry, with the distinct delivery ids it is in (one,
    when nothing was lost or sent twice: the same delivery read again is what at-least-once allows
    and the sinks absorb)."""
    found: dict[str, set[str]] = defaultdict(set)
    for user in users:
        for delivery in watcher.for_user(user):
            for event_id in delivery.event_ids:
                found[event_id].add(delivery.delivery_id)
    return found
