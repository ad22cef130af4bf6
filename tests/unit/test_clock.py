import time

import pytest

from streams.core.clock import Clock, ManualClock, SystemClock


def test_manual_clock_is_settable_and_advanceable():
    clock: Clock = ManualClock(1_000)
    assert clock.now_ms() == 1_000
    assert clock.advance(ms=5, s=1, minutes=1, hours=1) == 1_000 + 5 + 1_000 + 60_000 + 3_600_000
    clock.set(42)
    assert clock.now_ms() == 42
    with pytest.raises(ValueError):
        clock.advance(s=-1)


def test_system_clock_is_wall_time_in_ms():
    before_ns = time.time_ns()
    now_ms = SystemClock().now_ms()
    after_ns = time.time_ns()
    assert before_ns // 1_000_000 <= now_ms <= after_ns // 1_000_000
