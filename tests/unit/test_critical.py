"""Rule 5: CRITICAL bypasses throttle, digest and quiet hours, but not a disabled channel."""

from unit_helpers import T0, at, event, go, kinds, limited, only

from streams.core.model import Channel, Priority
from streams.core.routing import UserState


def critical(event_id: str = "c1", **kw):
    return event(event_id, priority=Priority.CRITICAL, **kw)


def test_critical_bypasses_quiet_hours():
    p = only(Channel.EMAIL, quiet=(0, 1439))  # quiet almost all day
    result = go(critical(), p, now=at(2025, 1, 15, 3))
    assert kinds(result) == [("email", "SINGLE", "critical")]


def test_critical_bypasses_digest():
    result = go(critical(category="social.like"), only(Channel.EMAIL))
    assert kinds(result) == [("email", "SINGLE", "critical")]
    assert result.state.holds == {}


def test_critical_bypasses_throttle_and_does_not_use_it_up():
    p = limited(Channel.EMAIL, 1)
    state = UserState()
    go(event("e1"), p, state)
    assert go(event("e2"), p, state, T0 + 1).counters[("held", "throttle")] == 1
    result = go(critical(), p, state, T0 + 2)
    assert kinds(result) == [("email", "SINGLE", "critical")]
    assert state.throttle[Channel.EMAIL].sent_event_ids == ["e1"]


def test_critical_does_not_bypass_a_disabled_channel():
    result = go(critical(channels=(Channel.SMS,)), only(Channel.EMAIL))
    assert result.deliveries == []
    assert result.counters[("dropped", "channel_disabled")] == 1


def test_critical_keeps_its_priority_on_the_delivery():
    [d] = go(critical(), only(Channel.EMAIL)).deliveries
    assert d.priority == Priority.CRITICAL
