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
        # Same decision time as the first pass; never count twice. Its window is the current
        # one or the one before (kept for a window after it ended).
        if win is not None:
            for counted_start, sent in ((win.window_start_ms, win.sent_event_ids),
                                        (win.previous_start_ms, win.previous_sent_ids)):
                if counted_start == start:
                    return ("send" if event_id in sent else "skip"), start + window_ms
        # Older than that: we cannot tell. At-least-once: send.
        return "send", start + window_ms
    if win is None or win.window_start_ms < start:
        before = win if win is not None and win.window_start_ms == start - window_ms else None
        win = throttle[channel] = ThrottleWindow(start)
        if before is not None:
            win.previous_start_ms, win.previous_sent_ids = before.window_start_ms, before.sent_event_ids
    # (win.window_start_ms > start only if the clock stepped back: keep counting in that window)
    end = win.window_start_ms + window_ms
    if len(win.sent_event_ids) < limit:
        win.sent_event_ids.append(event_id)
        return "send", end
    return "fold", end


def prune_windows(throttle: dict[Channel, ThrottleWindow], now_ms: int, window_ms: int) -> bool:
    """A window that has ended becomes the previous window of the one after it, for one more
    window; older ones are dropped. Returns whether anything changed."""
    # Called for every event and rarely finds anything: look before building a list.
    for w in throttle.values():
        if w.window_start_ms + window_ms <= now_ms or (
                w.previous_start_ms is not None and w.previous_start_ms + 2 * window_ms <= now_ms):
            break
    else:
        return False
    for ch, w in list(throttle.items()):
        if w.window_start_ms + window_ms <= now_ms:
            # A window nothing was sent in had no events routed in it: no replay can need it.
            if w.sent_event_ids and w.window_start_ms + 2 * window_ms > now_ms:
                throttle[ch] = ThrottleWindow(w.window_start_ms + window_ms, [], w.window_start_ms,
                                              w.sent_event_ids)
            else:
                del throttle[ch]
        elif w.previous_start_ms is not None and w.previous_start_ms + 2 * window_ms <= now_ms:
            w.previous_start_ms, w.previous_sent_ids = None, []
    return True
