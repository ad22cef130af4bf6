"""In-memory index of when each user's pending holds fall due, per partition.

The holds themselves live in a changelogged table; this index is only a way to find the due ones
without scanning. It is rebuilt from the table after every rebalance or restart, so it never has
to be durable itself.
"""

from __future__ import annotations

import heapq


class DueIndex:
    def __init__(self) -> None:
        self._heaps: dict[int, list[tuple[int, bytes]]] = {}
        self._due: dict[bytes, int] = {}  # the one live due time per key; older heap rows are stale

    def set(self, partition: int, key: bytes, due_ms: int | None) -> None:
        if due_ms is None:
            self._due.pop(key, None)
            return
        if self._due.get(key) == due_ms:
            return
        self._due[key] = due_ms
        heapq.heappush(self._heaps.setdefault(partition, []), (due_ms, key))

    def pop_due(self, partition: int, now_ms: int, limit: int | None = None) -> list[bytes]:
        """Keys in `partition` due at `now_ms` (the earliest `limit` of them), removed from the
        index (the caller re-adds them)."""
        heap = self._heaps.get(partition)
        keys: list[bytes] = []
        while heap and heap[0][0] <= now_ms and (limit is None or len(keys) < limit):
            due, key = heapq.heappop(heap)
            if self._due.get(key) == due:
                del self._due[key]
                keys.append(key)
        return keys

    def clear(self) -> None:
        self._heaps.clear()
        self._due.clear()

    def __len__(self) -> int:
        return len(self._due)
