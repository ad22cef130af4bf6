"""A clock that a test in another process can set, through a small JSON file.

The file holds `{"fake_ms": T, "real_ms": R}`: the clock reads T + (now - R), so time still flows
at the normal rate from a chosen instant (say 23:59:50 in Berlin). It is re-read at most every
100 ms. Only for tests: production workers run on the system clock.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from streams.core.clock import SystemClock


def write_clock_file(path: Path, fake_now_ms: int) -> None:
    """Make every worker reading `path` believe that now is `fake_now_ms`."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"fake_ms": fake_now_ms, "real_ms": time.time_ns() // 1_000_000}))
    tmp.replace(path)  # atomic: a reader never sees half a file


class FileClock:
    def __init__(self, path: Path, reread_interval_s: float = 0.1) -> None:
        self._path = path
        self._interval = reread_interval_s
        self._offset_ms = 0
        self._read_at = 0.0
        self._system = SystemClock()

    def now_ms(self) -> int:
        real = self._system.now_ms()
        if time.monotonic() - self._read_at >= self._interval:
            self._read_at = time.monotonic()
            try:
                anchor = json.loads(self._path.read_text())
                self._offset_ms = int(anchor["fake_ms"]) - int(anchor["real_ms"])
            except (FileNotFoundError, ValueError, KeyError):
                self._offset_ms = 0
        return real + self._offset_ms
