"""The load: the ledger's events sent at a steady rate from a thread, through the SDK, as a service
would send them. The rate can be multiplied for a while (a spike), and the NotificationEvent
version the producer writes switched mid-load (a contract rollout)."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from chaos.ledger import Ledger
from streams.client.sdk import NotificationClient
from streams.contracts.schemas import subject_for


class Load:
    def __init__(self, ledger: Ledger, clients: Mapping[int, NotificationClient], rate: float,
                 writer: int) -> None:
        """``clients``: one per event version the load may write (0: the current one)."""
        self.ledger, self.clients, self.rate = ledger, dict(clients), rate
        self.writer = writer
        self.multiplier = 1.0
        self.sent = 0
        self.error: BaseException | None = None
        self.sent_at: dict[str, float] = {}  # event_id -> wall clock of its first send
        self.written_with: dict[str, int] = {}  # event_id -> version of its first send
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-load", daemon=True)
        self.started_at = self.stopped_at = 0.0

    def start(self) -> None:
        self.started_at = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        """Stop sending and wait until the broker has everything sent."""
        self._stop.set()
        self._thread.join(60)
        for client in self.clients.values():
            client.flush(60)
        self.stopped_at = time.monotonic()
        if self.error is not None:
            raise RuntimeError(f"the load generator failed: {self.error!r}") from self.error

    def prepare_writer(self, version: int) -> None:
        """Look the version's schema id up now (the registry must answer), as a producer does at
        its start: it can then switch to it while the registry is away."""
        client = self.clients[version]
        client.codec.schema_id(subject_for(client.events_topic))

    def use_writer(self, version: int) -> None:
        self.prepare_writer(version)
        self.writer = version

    def _run(self) -> None:
        next_at = time.monotonic()
        try:
            while not self._stop.is_set():
                event = self.ledger.draw(int(time.time() * 1000))
                writer = self.writer
                self.clients[writer].send_event(event)
                if event.event_id not in self.sent_at:
                    self.sent_at[event.event_id] = time.time()
                    self.written_with[event.event_id] = writer
                self.sent += 1
                # Catch-up pacing: behind schedule, send at once; ahead, wait for the slot.
                next_at += 1.0 / (self.rate * self.multiplier)
                delay = next_at - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                elif delay < -1.0:
                    next_at = time.monotonic()  # a stall: do not burst a second's worth after it
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.error = exc

    @property
    def offered_per_s(self) -> float:
        end = self.stopped_at or time.monotonic()
        return self.sent / max(1e-6, end - self.started_at)
