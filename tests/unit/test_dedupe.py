"""Rule 2: a repeated event_id is dropped; the same position is a replay, reprocessed exactly."""

from unit_helpers import HOUR, MINUTE, T0, S, event, go, kinds, limited, only

from streams.core.model import Channel
from streams.core.routing import UserState, flush_due
from streams.core.settings import RouterSettings

P = only(Channel.EMAIL)


def test_duplicate_from_another_position_is_dropped():
    state = UserState()
    first = go(event("e1"), P, state, T0, (0, 10))
    again = go(event("e1"), P, state, T0 + MINUTE, (0, 11))
    assert kinds(first) == [("email", "SINGLE", "immediate")]
    assert again.deliveries == []
    assert again.counters[("dropped", "duplicate")] == 1
    assert not again.changed


def test_duplicate_without_position_is_dropped():
    state = UserState()
    go(event("e1"), P, state, T0)
    assert go(event("e1"), P, state, T0 + 1).counters[("dropped", "duplicate")] == 1


def test_replay_at_same_position_gives_the_same_outputs_without_double_counting():
    state = UserState()
    first = go(event("e1"), P, state, T0, (3, 42))
    replay = go(event("e1"), P, state, T0 + 5 * MINUTE, (3, 42))
    assert replay.deliveries == first.deliveries  # same ids, same created_at: same records
    assert replay.counters[("replayed", "same_position")] == 1
    assert replay.counters[("dropped", "duplicate")] == 0
    assert state.throttle[Channel.EMAIL].sent_event_ids == ["e1"]
    assert not replay.changed


def test_replay_decides_at_the_original_time():
    # It expired between the first pass and the replay: the replay must still re-send.
    state = UserState()
    ev = event("e1", expires_at=T0 + MINUTE)
    first = go(ev, P, state, T0, (0, 1))
    replay = go(ev, P, state, T0 + HOUR, (0, 1))
    assert first.deliveries and replay.deliveries == first.deliveries


def test_replay_of_a_held_event_does_not_add_it_twice():
    state = UserState()
    go(event("e1", category="social.like"), P, state, T0, (0, 1))
    replay = go(event("e1", category="social.like"), P, state, T0 + 1, (0, 1))
    assert replay.deliveries == []
    [hold] = state.holds.values()
    assert hold.event_ids == ["e1"]
    assert replay.counters[("held", "digest")] == 0


def test_replay_of_a_throttle_folded_event_is_not_sent_nor_folded_again():
    p = limited(Channel.EMAIL, 1)
    state = UserState()
    go(event("e1"), p, state, T0, (0, 1))
    folded = go(event("e2"), p, state, T0 + 1, (0, 2))
    assert folded.counters[("held", "throttle")] == 1
    replay = go(event("e2"), p, state, T0 + 2, (0, 2))
    assert replay.deliveries == []
    assert state.holds["email|throttle|"].event_ids == ["e2"]
    assert state.throttle[Channel.EMAIL].sent_event_ids == ["e1"]


def test_replay_after_its_hold_was_flushed_does_not_reopen_it():
    state = UserState()
    go(event("e1", category="social.like"), P, state, T0, (0, 1))
    flushed = flush_due(state, P, T0 + S.digest_window_ms, S)
    assert len(flushed.deliveries) == 1
    replay = go(event("e1", category="social.like"), P, state, T0 + S.digest_window_ms, (0, 1))
    assert replay.deliveries == [] and state.holds == {}


def test_seen_is_forgotten_after_the_retention_window():
    settings = RouterSettings(dedupe_retention_ms=HOUR)
    state = UserState()
    go(event("e1"), P, state, T0, (0, 1), settings)
    assert go(event("e1"), P, state, T0 + HOUR - 1, (0, 2), settings).deliveries == []
    later = go(event("e1"), P, state, T0 + HOUR + 1, (0, 3), settings)
    assert kinds(later) == [("email", "SINGLE", "immediate")]
    assert state.seen.get("e1")[:2] == (0, 3)


def test_old_seen_entries_are_pruned():
    settings = RouterSettings(dedupe_retention_ms=HOUR)
    state = UserState()
    for i in range(3):
        go(event(f"old{i}"), P, state, T0 + i, (0, i), settings)
    go(event("new"), P, state, T0 + 2 * HOUR, (0, 9), settings)
    assert state.seen.ids() == ["new"]


def test_an_expired_entry_out_of_order_is_not_a_duplicate():
    # Processing order and seen_at can disagree (clock skew after a rebalance), so the head-only
    # prune may leave an expired entry behind a fresh one; its age must still count.
    settings = RouterSettings(dedupe_retention_ms=HOUR)
    state = UserState()
    state.seen.remember("fresh", 0, 1, T0 + 2 * HOUR)
    state.seen.remember("stale", 0, 2, T0)
    result = go(event("stale"), P, state, T0 + 2 * HOUR, (0, 3), settings)
    assert kinds(result) == [("email", "SINGLE", "immediate")]
    assert state.seen.ids() == ["fresh", "stale"] and state.seen.get("stale").offset == 3
