"""Rule 7: at most N deliveries per (user, channel) per window; overflow folded, not lost."""

from unit_helpers import HOUR, MINUTE, T0, S, event, go, kinds, limited, only

from streams.core.model import Channel, DeliveryKind
from streams.core.routing import UserState, flush_due, next_due_ms
from streams.core.settings import RouterSettings

WINDOW_START = T0 - T0 % HOUR
WINDOW_END = WINDOW_START + HOUR


def burst(p, n, state=None, start=T0, settings=S):
    state = state if state is not None else UserState()
    results = [go(event(f"e{i}"), p, state, start + i, (0, i), settings) for i in range(n)]
    return state, results


def test_overflow_is_folded_and_flushed_at_window_end_as_one_digest():
    p = limited(Channel.EMAIL, 3)
    state, results = burst(p, 7)
    sent = [d.event_ids for r in results for d in r.deliveries]
    assert sent == [("e0",), ("e1",), ("e2",)]
    assert sum(r.counters[("held", "throttle")] for r in results) == 4
    assert next_due_ms(state) == WINDOW_END

    assert flush_due(state, p, WINDOW_END - 1).deliveries == []
    flushed = flush_due(state, p, WINDOW_END)
    [d] = flushed.deliveries
    assert d.kind == DeliveryKind.DIGEST and d.reason == "throttle_window"
    assert d.event_ids == ("e3", "e4", "e5", "e6")
    assert d.item_count == 4
    assert flushed.counters[("folded", "throttle")] == 4
    assert state.holds == {}


def test_a_new_window_starts_a_new_count():
    p = limited(Channel.EMAIL, 1)
    state = UserState()
    go(event("e1"), p, state, T0)
    assert go(event("e2"), p, state, T0 + 1).deliveries == []
    assert kinds(go(event("e3"), p, state, WINDOW_END)) == [("email", "SINGLE", "immediate")]


def test_single_overflowed_event_goes_out_as_single():
    p = limited(Channel.EMAIL, 1)
    state, _ = burst(p, 2)
    [d] = flush_due(state, p, WINDOW_END).deliveries
    assert d.kind == DeliveryKind.SINGLE and d.event_ids == ("e1",)
    assert d.title == "title e1"


def test_default_and_per_channel_limits_from_settings():
    settings = RouterSettings(throttle_limit=2, throttle_limits={Channel.SMS: 1})
    p = only(Channel.EMAIL, Channel.SMS)
    state, results = burst(p, 3, settings=settings)
    per_channel = [d.channel.key for r in results for d in r.deliveries]
    assert per_channel.count("email") == 2 and per_channel.count("sms") == 1


def test_limit_zero_means_unlimited():
    settings = RouterSettings(throttle_limit=0)
    _, results = burst(only(Channel.EMAIL), 50, settings=settings)
    assert sum(len(r.deliveries) for r in results) == 50


def test_channels_are_throttled_independently():
    p = only(Channel.EMAIL, Channel.IN_APP)
    settings = RouterSettings(throttle_limit=10, throttle_limits={Channel.EMAIL: 1})
    _, results = burst(p, 3, settings=settings)
    assert [k for r in results for k in kinds(r)].count(("in_app", "SINGLE", "immediate")) == 3


def test_an_ended_window_is_kept_for_one_more_window_then_pruned():
    p = limited(Channel.EMAIL, 5)
    state, _ = burst(p, 2)
    go(event("later", category="social.like"), p, state, WINDOW_END + MINUTE)
    window = state.throttle[Channel.EMAIL]
    assert (window.window_start_ms, window.sent_event_ids) == (WINDOW_END, [])
    assert (window.previous_start_ms, window.previous_sent_ids) == (WINDOW_START, ["e0", "e1"])
    go(event("much later", category="social.like"), p, state, WINDOW_END + HOUR + MINUTE)
    assert Channel.EMAIL not in state.throttle


def test_a_replay_across_the_window_boundary_is_not_delivered_twice():
    """Folded just before the window ended, flushed as a digest at its end, then read again
    after a restart (its offset not committed yet): its hold is gone and its window has ended.
    It must be skipped, not sent again as a SINGLE with another delivery_id."""
    p = limited(Channel.EMAIL, 1)
    state = UserState()
    late = WINDOW_END - 1000
    go(event("e0"), p, state, late - 1, (0, 0))
    go(event("e1"), p, state, late, (0, 1))  # folded into the throttle hold
    [digest] = flush_due(state, p, WINDOW_END).deliveries
    assert digest.event_ids == ("e1",)
    go(event("e2"), p, state, WINDOW_END + 500, (0, 2))  # the next window begins
    replay_e0 = go(event("e0"), p, state, WINDOW_END + 900, (0, 0))
    replay_e1 = go(event("e1"), p, state, WINDOW_END + 901, (0, 1))
    assert [d.delivery_id for d in replay_e0.deliveries] == [
        d.delivery_id for d in go(event("e0"), p, UserState(), late - 1, (0, 0)).deliveries]
    assert replay_e1.deliveries == []


def test_a_state_written_before_the_previous_window_was_kept_still_reads():
    state = UserState.from_dict({"v": 2, "user_id": "u1",
                                 "throttle": {"email": [WINDOW_START, ["e0"]]}})
    window = state.throttle[Channel.EMAIL]
    assert (window.window_start_ms, window.sent_event_ids, window.previous_start_ms) == (
        WINDOW_START, ["e0"], None)
    assert UserState.from_dict(state.to_dict()) == state


def test_admit_counts_once_and_tells_replays_apart():
    from streams.core.routing.throttle import admit

    windows = {}
    assert admit(windows, Channel.SMS, "a", 1, T0, HOUR) == ("send", WINDOW_END)
    assert admit(windows, Channel.SMS, "b", 1, T0 + 1, HOUR) == ("fold", WINDOW_END)
    # Replays at the original time: 'a' was counted (send again, not counted twice), 'b' was
    # folded (nothing to do: its hold has it or has already sent it).
    assert admit(windows, Channel.SMS, "a", 1, T0, HOUR, replay=True)[0] == "send"
    assert admit(windows, Channel.SMS, "b", 1, T0 + 1, HOUR, replay=True)[0] == "skip"
    assert windows[Channel.SMS].sent_event_ids == ["a"]
