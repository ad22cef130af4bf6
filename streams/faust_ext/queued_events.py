"""Take the events already waiting in an agent's stream queue in one go.

Mirrors: the per-event work of ``faust.streams.Stream._py_aiter`` that matters for correctness
(listed below); calls ``Consumer.track_message``.

Faust's stream iterator hands an agent one event per turn of the event loop: an ``await
sleep(0)``, a generator step, the sensors' per-event bookkeeping and a task-local "current event"
for each. The router routes in batches of what is already queued (``app.py``), so after the first
event of a batch the rest are taken here, straight from the queue, with what the iterator does
that matters for correctness kept:

- an event fetched before a rebalance, or taken while the flow is suspended for one, is skipped
  and left unacked, as Faust's iterator skips it: it is read again from the committed offset;
- an event of an acking topic is tracked as unacked (``Consumer.track_message``), so a rebalance
  waits for its routing to finish before it commits and hands the partition over.

What is left out is the stream sensors' per-event timing (Faust's own ``/stats`` page), and the
"current event", which the router sets per partition itself.
"""

from __future__ import annotations

from typing import Any

from faust.types import EventT


def take_queued(app: Any, queue: Any, batch: list[Any], limit: int) -> None:
    """Append to ``batch`` the events waiting in ``queue`` (an agent stream's channel queue),
    up to ``limit`` events in the batch."""
    if len(batch) >= limit or queue.empty():
        return
    consumer = app.consumer
    acking_topics = app.topics.acking_topics
    # No await below: neither the generation nor the flow can change while this runs.
    skip_all = not app.flow_control.is_active()
    generation = app.consumer_generation_id
    while len(batch) < limit and not queue.empty():
        event = queue.get_nowait()
        if not isinstance(event, EventT):
            raise TypeError(f"expected Faust events in the stream queue, got {type(event)}")
        message = event.message
        if skip_all or message.generation_id != generation:
            continue
        if message.topic in acking_topics and not message.tracked:
            message.tracked = True
            consumer.track_message(message)
        batch.append(event)
