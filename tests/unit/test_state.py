"""UserState survives a JSON round trip (the changelogged table value) and behaves the same."""

import json

from unit_helpers import HOUR, T0, at, event, go, limited

from streams.core.model import Channel, Priority
from streams.core.routing import UserState, flush_due
from streams.core.routing.state import STATE_VERSION


def busy_state():
    p = limited(Channel.EMAIL, 1, quiet=(22 * 60, 7 * 60), timezone="Europe/Berlin")
    state = UserState()
    go(event("e0"), p, state, at(2025, 1, 15, 6, 0, "Europe/Berlin"), (1, 0))  # quiet hours
    go(event("e1"), p, state, T0, (0, 1))
    go(event("e2", expires_at=T0 + HOUR, priority=Priority.HIGH), p, state, T0 + 1, (0, 2))
    go(event("e3", category="social.like", digest_key="k"), p, state, T0 + 2, (1, 3))
    return p, state


def test_round_trip_through_json_is_lossless():
    _, state = busy_state()
    assert state.seen and state.throttle and len(state.holds) == 3
    restored = UserState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert restored == state
    assert restored.to_dict()["v"] == STATE_VERSION


def test_restored_state_flushes_identically():
    p, state = busy_state()
    restored = UserState.from_dict(json.loads(json.dumps(state.to_dict())))
    later = at(2025, 1, 16, 7, 0, "Europe/Berlin")
    assert flush_due(restored, p, later).deliveries == flush_due(state, p, later).deliveries


def test_empty_state_is_compact_and_round_trips():
    assert UserState().to_dict() == {"v": STATE_VERSION, "user_id": ""}
    assert UserState.from_dict(None) == UserState()
    assert UserState().is_empty()


def test_unknown_version_is_rejected():
    import pytest

    with pytest.raises(ValueError, match="version"):
        UserState.from_dict({"v": 99})
