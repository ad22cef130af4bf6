"""NotificationEvent v2's `summary`: SMS and push carry it instead of the body, held or not; the
other channels, and events without one, are as before."""

from unit_helpers import MINUTE, T0, event, go, prefs

from streams.core.model import Channel
from streams.core.routing import UserState, flush_due


def bodies(deliveries) -> dict[str, str]:
    return {d.channel.key: d.body for d in deliveries}


def test_sms_and_push_carry_the_summary_the_other_channels_the_body():
    result = go(event(body="the whole story", summary="in short"), prefs())
    assert bodies(result.deliveries) == {"email": "the whole story", "sms": "in short",
                                         "push": "in short", "in_app": "the whole story"}
    assert {d.title for d in result.deliveries} == {"title e1"}


def test_without_a_summary_every_channel_carries_the_body():
    result = go(event(body="the whole story"), prefs())
    assert set(bodies(result.deliveries).values()) == {"the whole story"}


def test_a_held_event_goes_out_with_the_summary_on_sms_and_push():
    state = UserState()
    go(event("e1", category="social.like", body="long", summary="short"), prefs(), state)
    result = flush_due(state, prefs(), T0 + 60 * MINUTE)
    assert bodies(result.deliveries) == {"email": "long", "sms": "short", "push": "short",
                                         "in_app": "long"}


def test_the_delivery_id_does_not_depend_on_the_summary():
    with_summary = go(event(summary="short"), prefs()).deliveries
    without = go(event(), prefs()).deliveries
    assert [d.delivery_id for d in with_summary] == [d.delivery_id for d in without]
    assert Channel.SMS in {d.channel for d in with_summary}
