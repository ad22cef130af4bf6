"""A worker's stop that ends within a bound, whatever its agents are doing.

Mirrors: ``faust.transport.consumer.Consumer.wait_empty`` while the app stops (the full list,
pinned: ``internals.py``).

When a worker stops, Faust's ``App._stop_consumer`` waits in ``Consumer.wait_empty`` until every
event an agent has taken is acknowledged. The loop only ends when they all are: an event that is
never acknowledged (its agent crashed and was restarted, or it waits for a dependency that is away)
kept a SIGTERMed worker there for minutes, until a SIGKILL, and the agents are only stopped after
it. Cancelling it from outside does not help: its wait for an ack swallows the cancellation. Here
the same loop runs with a deadline while the app is stopping: at most ``stop_wait_s`` (plus the
one-second wait for an ack under way), then the offsets that are safe (below every
unacknowledged event) are committed, as Faust does after its loop, and the stop goes on. Nothing
is lost: the unacknowledged events are above the committed offsets, so the partitions' next owner
routes them again (the same ``delivery_id``s, absorbed by the sinks).

During a rebalance the wait is Faust's, unbounded: a revoked partition must not be routed by two
workers at once.
"""

from __future__ import annotations

import time
from typing import Any

DEFAULT_STOP_WAIT_S = 10.0


class BoundedStopConsumer:
    """Mixed in front of the transport's consumer class (``bound_stop_wait``)."""

    stop_wait_s = DEFAULT_STOP_WAIT_S
    # What the Faust consumer this is mixed into has.
    app: Any
    log: Any
    should_stop: bool
    _unacked_messages: Any
    commit: Any
    commit_and_end_transactions: Any
    _wait_for_ack: Any
    _clean_unacked_messages: Any

    async def wait_empty(self) -> None:
        if not self.app.should_stop:
            await super().wait_empty()
            return
        deadline = time.monotonic() + self.stop_wait_s
        while not self.should_stop and self._unacked_messages:
            if time.monotonic() >= deadline:
                self.log.warning(
                    "stopping with %d events still unacknowledged after %.0fs: the safe offsets "
                    "are committed, and the partitions' next owner routes the rest again",
                    len(self._unacked_messages), self.stop_wait_s)
                break
            await self.commit()
            if not self._unacked_messages:
                break
            await self._wait_for_ack(timeout=1)
            self._clean_unacked_messages()
        await self.commit_and_end_transactions()


def bound_stop_wait(app: Any, stop_wait_s: float) -> None:
    """Make the consumer Faust will build for ``app`` wait at most ``stop_wait_s`` when stopping.
    Call after the transport's consumer class is chosen (``transport.use_worker_transport``)."""
    base = app.transport.Consumer
    app.transport.Consumer = type(base.__name__, (BoundedStopConsumer, base),
                                  {"__module__": base.__module__, "stop_wait_s": stop_wait_s})
