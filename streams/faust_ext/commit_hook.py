"""Make Faust's offset commit wait for the worker's own producer.

Relies on: faust-streaming 0.15.3's ``Consumer._commit_offsets``, which awaits
``app.producer.flush()`` before it commits offsets. The worker sends deliveries and the users
changelog through librdkafka, not through Faust's producer; wrapping that flush makes every commit
wait until those records are on the broker. Without it an offset could be committed before the
deliveries of the events below it are acknowledged, and a crash would lose them. The guard test
(tests/unit/test_faust_internals.py) pins that method's source, and a real-stack test
(tests/integration/test_commit_safety.py) checks the outcome.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any


def flush_before_commits(faust_producer: Any, flush_first: Callable[[], Awaitable[None]]) -> None:
    """Make ``faust_producer.flush`` (awaited by Faust before each commit) await ``flush_first``
    before Faust's own flush."""
    original = faust_producer.flush

    async def flush_both() -> None:
        await flush_first()
        await original()

    faust_producer.flush = flush_both
