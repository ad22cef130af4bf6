"""Rule 6: quiet hours in the user's timezone, across midnight and DST; held until they end."""

from unit_helpers import MINUTE, at, event, go, kinds, only, prefs

from streams.core.model import Channel, DeliveryKind
from streams.core.routing import UserState, flush_due, next_due_ms
from streams.core.routing.quiet_hours import quiet_until

BERLIN_NIGHT = (22 * 60, 7 * 60)  # 22:00-07:00 local


def berlin(**kw):
    return only(Channel.EMAIL, quiet=BERLIN_NIGHT, timezone="Europe/Berlin", **kw)


def test_evening_event_is_held_until_next_morning_local_time():
    now = at(2025, 1, 15, 23, 30, "Europe/Berlin")  # 22:30 UTC
    result = go(event(), berlin(), now=now)
    assert result.deliveries == []
    assert result.counters[("held", "quiet_hours")] == 1
    assert next_due_ms(result.state) == at(2025, 1, 16, 7, 0, "Europe/Berlin")
    assert next_due_ms(result.state) == at(2025, 1, 16, 6, 0)  # CET = UTC+1


def test_early_morning_event_is_held_until_the_same_morning():
    now = at(2025, 1, 16, 5, 0, "Europe/Berlin")
    result = go(event(), berlin(), now=now)
    assert next_due_ms(result.state) == at(2025, 1, 16, 7, 0, "Europe/Berlin")


def test_outside_quiet_hours_delivers_now():
    # 22:30 UTC is 21:30 in London (not quiet in the Berlin sense): the zone matters.
    now = at(2025, 1, 15, 21, 59, "Europe/Berlin")
    assert kinds(go(event(), berlin(), now=now)) == [("email", "SINGLE", "immediate")]
    assert kinds(go(event(), berlin(), now=at(2025, 1, 16, 7, 0, "Europe/Berlin"))) == [
        ("email", "SINGLE", "immediate")
    ]


def test_quiet_hours_end_sends_one_digest_of_everything_held():
    state = UserState()
    p = berlin()
    start = at(2025, 1, 15, 23, 0, "Europe/Berlin")
    for i in range(3):
        go(event(f"e{i}", category=["news", "social.comment", "news"][i]), p, state, start + i)
    end = at(2025, 1, 16, 7, 0, "Europe/Berlin")
    assert flush_due(state, p, end - 1).deliveries == []
    flushed = flush_due(state, p, end)
    [d] = flushed.deliveries
    assert d.kind == DeliveryKind.DIGEST and d.reason == "quiet_hours_end"
    assert d.event_ids == ("e0", "e1", "e2") and d.item_count == 3
    assert d.category == "mixed"
    assert flushed.counters[("folded", "quiet_hours")] == 3
    assert state.holds == {}


def test_single_held_event_goes_out_as_single_at_quiet_end():
    state = UserState()
    p = berlin()
    go(event("e1"), p, state, at(2025, 1, 15, 23, 0, "Europe/Berlin"))
    [d] = flush_due(state, p, at(2025, 1, 16, 7, 0, "Europe/Berlin")).deliveries
    assert (d.kind, d.reason, d.title, d.body) == (
        DeliveryKind.SINGLE,
        "quiet_hours_end",
        "title e1",
        "body e1",
    )


def test_digest_due_during_quiet_hours_is_postponed_to_their_end():
    state = UserState()
    p = berlin()
    opened = at(2025, 1, 15, 21, 50, "Europe/Berlin")  # digest window ends 22:05, inside quiet
    go(event("e1", category="social.like"), p, state, opened)
    go(event("e2", category="social.like"), p, state, opened + MINUTE)
    due = next_due_ms(state)
    postponed = flush_due(state, p, due)
    assert postponed.deliveries == []
    assert postponed.counters[("postponed", "quiet_hours")] == 1
    end = at(2025, 1, 16, 7, 0, "Europe/Berlin")
    assert next_due_ms(state) == end
    [d] = flush_due(state, p, end).deliveries
    assert d.reason == "digest_window" and d.event_ids == ("e1", "e2")


def test_new_york_spring_forward_night():
    # 2025-03-09 02:00 EST -> 03:00 EDT. 07:00 EDT is 11:00 UTC, not 12:00.
    p = only(Channel.EMAIL, quiet=(22 * 60, 7 * 60), timezone="America/New_York")
    result = go(event(), p, now=at(2025, 3, 8, 23, 0, "America/New_York"))
    assert next_due_ms(result.state) == at(2025, 3, 9, 11, 0)


def test_new_york_fall_back_night():
    # 2025-11-02 02:00 EDT -> 01:00 EST. 07:00 EST is 12:00 UTC.
    p = only(Channel.EMAIL, quiet=(22 * 60, 7 * 60), timezone="America/New_York")
    result = go(event(), p, now=at(2025, 11, 1, 23, 0, "America/New_York"))
    assert next_due_ms(result.state) == at(2025, 11, 2, 12, 0)


def test_end_in_the_repeated_hour_of_a_fall_back():
    # Quiet 00:00-01:30; at 01:10 EST (the second 01:10 that night) the end is 01:30 EST.
    p = prefs(quiet=(0, 90), timezone="America/New_York")
    second_0110 = at(2025, 11, 2, 6, 10)  # 06:10 UTC = 01:10 EST
    assert quiet_until(p, second_0110) == at(2025, 11, 2, 6, 30)
    first_0110 = at(2025, 11, 2, 5, 10)  # 05:10 UTC = 01:10 EDT
    assert quiet_until(p, first_0110) == at(2025, 11, 2, 5, 30)


def test_same_start_and_end_means_no_quiet_hours():
    p = only(Channel.EMAIL, quiet=(600, 600))
    assert go(event(), p, now=at(2025, 1, 15, 10, 0)).deliveries


def test_unknown_timezone_falls_back_to_utc():
    p = prefs(quiet=(22 * 60, 7 * 60), timezone="Mars/Olympus_Mons")
    assert quiet_until(p, at(2025, 1, 15, 23, 0)) == at(2025, 1, 16, 7, 0)
