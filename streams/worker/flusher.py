"""Due holds out as digests, and due fallbacks on their next channel: on each tick, a partition's
users whose holds or fallbacks fell due.

The broker must hold the digests before the users' states forget the holds: a crash in between
re-sends them with the same delivery_id, which the sinks absorb. Meanwhile the router goes on,
except with those users' events (flush_parking.py). If the digests fail, the stored states keep
the holds, due again at once.
"""

from __future__ import annotations

from collections.abc import Callable

from streams.core.clock import Clock
from streams.core.routing.router import flush_due
from streams.core.routing.state import UserState
from streams.core.settings import RouterSettings
from streams.worker.delivery_producer import AckTracker, DeliveryProducer
from streams.worker.event_router import EventRouter
from streams.worker.metrics import PipelineMetrics
from streams.worker.replay_gate import ReplayGates
from streams.worker.user_store import UserStore

# Users whose due holds are flushed per hold of the lock: the router waits for it at most that
# long, so events keep their latency while a tick flushes thousands of holds.
FLUSH_CHUNK_USERS = 32


class DueFlusher:
    def __init__(self, store: UserStore, deliveries: DeliveryProducer, router: EventRouter,
                 metrics: PipelineMetrics, rules: RouterSettings, clock: Clock, gate: ReplayGates,
                 owned: Callable[[], list[int]], generation: Callable[[], int]) -> None:
        self.store, self.deliveries, self.router = store, deliveries, router
        self.metrics, self.rules, self.clock, self.gate = metrics, rules, clock, gate
        self._owned, self._generation = owned, generation

    async def flush_partition(self, partition: int) -> None:
        async with self.router.lock:
            await self.gate.refresh_if_stale(self._owned())
            if self.gate.holds(partition):
                return
        now = self.clock.now_ms()
        generation = self._generation()
        while generation == self._generation():  # stop if a rebalance intervened
            if not await self._flush_users(partition, now):
                return

    async def _flush_users(self, partition: int, now: int) -> bool:
        """Flush the next few due users of the partition; False when none was due."""
        store, parking = self.store, self.router.parking
        async with self.router.lock:
            await self.router.route_parked()  # left by a flush that failed, if the router has not
            flushed: dict[bytes, UserState] = {}
            acks = AckTracker()
            try:
                for key in store.due_users(partition, now, FLUSH_CHUNK_USERS):
                    state = store.load(partition, key)
                    result = flush_due(state, store.prefs(partition, key), now, self.rules)
                    for delivery in result.deliveries:
                        self.deliveries.send(delivery, acks)
                    self.metrics.add(result.counters)
                    flushed[key] = state
            except BaseException:
                store.discard(flushed)
                raise
            if not flushed:
                return False
            # These users' stored states still hold what was just sent: their events are
            # parked until the new states are saved.
            parking.begin_flush(flushed.keys())
        try:
            await self.deliveries.wait_acked(acks)
        except BaseException:
            store.discard(flushed)  # the stored states keep the holds: so must we
            for key in flushed:
                store.retry_now(partition, key, now)
            parking.end_flush()
            raise
        async with self.router.lock:
            for key, state in flushed.items():
                store.save(partition, key, state)
                store.schedule(partition, key, state)
            parking.end_flush()
            await self.router.route_parked()
        return True
