"""A Faust consumer that hands fetched records to the streams without four asyncio tasks each,
and without losing the ones fetched while a rebalance ends.

Replaces: ``faust.transport.drivers.aiokafka.Consumer._drain_messages`` and
``_new_consumer_thread``; sets aiokafka's ``_fetch_min_bytes``/``_fetch_max_wait_ms``
(the full list, pinned: ``internals.py``).

faust-streaming 0.15's ``Consumer._drain_messages`` delivers every record through
``Service.wait_first(callback(message), suspend_flow.wait())``: four tasks per record (the
callback, the flow event, the service's stopped and crashed events) and an ``asyncio.wait``, so
that a rebalance can interrupt a delivery blocked on a full stream buffer. In the worker's profile
mode's and asyncio's frames took ~19 % of its time, and since each record yields to the event
loop, the router's queue never held more than one event: its batches were of one.

Here a record is awaited directly while nothing can block it for long (flow not suspended, the
app's flow control open); otherwise Faust's ``wait_first`` path is taken. Read offsets, gaps and
``broker_commit_every`` are kept as Faust keeps them. Up to ``yield_every`` records of a fetch are
delivered in one turn of the event loop, which is what lets the router take them as a batch.

One behaviour differs on purpose. While a rebalance is under way Faust reads changelogs with the
flow open and the stream partitions resumed before their final seek; when it ends it resumes the
flow again, which clears the stream queues. A stream record delivered in that window was dropped
with its offset counted as read: never routed, and committed past by the next event (seen as a
restarted worker that routed nothing, tests/integration/test_pipeline_restart.py). Here stream
records are not delivered until the rebalance has ended; if any were held back, the partitions
are sought back to their committed offsets first, so those records are read again.

The consumer also sets the fetch sizes of the aiokafka consumer Faust builds (``with_fetch``):
Faust has no setting for them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka


class RebalanceHold:
    """Which fetched records may go to the streams now, and when to read held ones again."""

    def __init__(self, changelog_topics: Collection[str]) -> None:
        self._changelogs = frozenset(changelog_topics)
        self._held_back = False

    def admit(self, topic: str, rebalancing: bool) -> bool:
        """Changelog records always pass (the table recovery reads them during the rebalance).
        A stream record passes only outside a rebalance and only if none has been held back
        since the last seek, so that no record is delivered ahead of a held one."""
        if topic in self._changelogs:
            return True
        if rebalancing or self._held_back:
            self._held_back = True
            return False
        return True

    def seek_due(self, rebalancing: bool) -> bool:
        """True once after a rebalance that held records back: seek to the committed offsets."""
        if self._held_back and not rebalancing:
            self._held_back = False
            return True
        return False


class LeanDrainConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer with a cheaper per-record hand-off (see the module doc)."""

    yield_every = 100  # records delivered between two turns of the event loop
    # The broker answers a fetch once it has this many bytes for it, or after the wait. Faust
    # leaves aiokafka's 1 byte: under moderate load every fetch then carries two or three records
    # and the worker wakes for each (the worker's settings pass 64 KB / 25 ms, see
    # worker_settings.py). These class defaults are Faust's.
    fetch_min_bytes = 1
    fetch_max_wait_ms = 1500

    @classmethod
    def with_fetch(cls, min_bytes: int, max_wait_ms: int) -> type[LeanDrainConsumer]:
        """This consumer class with other fetch sizes (Faust builds the instance itself)."""
        return type(cls.__name__, (cls,), {"__module__": cls.__module__,
                                           "fetch_min_bytes": min_bytes,
                                           "fetch_max_wait_ms": max_wait_ms})

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _FetchTunedThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:
        try:
            await self._deliver_fetched(fetcher)
        except (*self.consumer_stopped_errors, asyncio.CancelledError):
            if self.app.should_stop:  # the worker is shutting down: not an error
                self.log.info("consumer stopped, shutting down")
                return
            raise

    async def _deliver_fetched(self, fetcher: Any) -> None:
        app = self.app
        hold = RebalanceHold(app.tables.changelog_topics)
        flow_control = app.flow_control
        suspend_flow = self.suspend_flow
        acks_enabled_for = app.topics.acks_enabled_for
        read_offsets = self._read_offset
        since_yield = 0
        while not (self._stopped.is_set() or fetcher._stopped.is_set()):
            if hold.seek_due(app.rebalancing):
                await self.perform_seek()
            records = self.getmany(timeout=1.0)
            await asyncio.sleep(0)  # getmany may return at once, again and again
            if self.should_stop:
                continue
            async for tp, message in records:
                if not hold.admit(tp.topic, app.rebalancing):
                    continue
                since_yield += 1
                if since_yield > self.yield_every:
                    since_yield = 0
                    await asyncio.sleep(0)
                offset = message.offset
                last = read_offsets[tp]
                if last is not None and offset < last:
                    continue  # read before (a seek went back): the stream has it already
                if last and offset - last > 1 and acks_enabled_for(message.topic):
                    # Offsets missing in between (compaction, transaction markers) count as
                    # acked, or the committed offset could never move past them.
                    await self._add_gap(tp, last + 1, offset)
                if self._commit_every is not None and self._n_acked >= self._commit_every:
                    self._n_acked = 0
                    await self.commit()
                if flow_control.is_active() and not suspend_flow.is_set():
                    await self.callback(message)
                else:  # let a flow suspension interrupt the delivery, as Faust does
                    await self.wait_first(self.callback(message), suspend_flow.wait())
                read_offsets[tp] = offset


class _FetchTunedThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Read by AIOKafkaConsumer.start() when it builds its fetcher; not start()ed yet here.
        consumer._fetch_min_bytes = self.consumer.fetch_min_bytes
        consumer._fetch_max_wait_ms = self.consumer.fetch_max_wait_ms
        return consumer

