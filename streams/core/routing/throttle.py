"""Fixed-window throttle per (user, channel): at most N deliveries per window."""

from __future__ import annotations

from typing import Literal

from streams.core.model import Channel
from streams.core.routing.state import ThrottleWindow

Admission = Literal["send", "fold", "skip"]


def window_start(now_ms: int, window_ms: int) -> int:
    return now_ms - now_ms % window_ms


def admit(
    throttle: dict[Channel, ThrottleWindow],
    channel: Channel,
    event_id: str,
    limit: int,
    now_ms: int,
    window_ms: int,
    replay: bool = False,
) -> tuple[Admission, int]:
    """Decide for one event; returns (admission, end of the window it was counted in).

    'send': counted (or already counted), deliver now. 'fold': over the limit, hold until the
    window ends. 'skip': a replay of an event that was folded the first time; its hold already
    has it (or has been flushed), so nothing to do.
    """
    start = window_start(now_ms, window_ms)
    if limit <= 0:
        return "send", start + window_ms  # unlimited: nothing to count
    win = throttle.get(channel)
    if replay:
        # Same decision time as the first pass; never count twice.
        if win is not None and win.window_start_ms == start and event_id not in win.sent_event_ids:
            return "skip", start + window_ms
        # Counted then, or the window has moved on and we cannot tell: at-least-once, send.
        return "send", start + window_ms
    if win is None or win.window_start_ms < start:
        win = throttle[channel] = ThrottleWindow(start)
    # (win.window_start_ms > start only if the clock stepped back: keep counting in that window)
    end = win.window_start_ms + window_ms
    if len(win.sent_event_ids) < limit:
        win.sent_event_ids.append(event_id)
        return "send", end
    return "fold", end


def prune_windows(throttle: dict[Channel, ThrottleWindow], now_ms: int, window_ms: int) -> bool:
    """Drop windows that have ended; returns whether anything was removed."""
    # Called for every event and rarely finds anything: look before building a list.
    for w in throttle.values():
        if w.window_start_ms + window_ms <= now_ms:
            break
    else:
        return False
    ended = [ch for ch, w in throttle.items() if w.window_start_ms + window_ms <= now_ms]
    for ch in ended:
        del throttle[ch]
    return True
