"""Rule 8: digest categories are held per (channel, digest_key or category) for one window."""

from unit_helpers import MINUTE, T0, S, event, go, only

from streams.core.model import Channel, DeliveryKind
from streams.core.routing import UserState, flush_due, next_due_ms
from streams.core.settings import RouterSettings

P = only(Channel.EMAIL)
WINDOW = S.digest_window_ms


def like(event_id, **kw):
    return event(event_id, category="social.like", **kw)


def test_window_opens_with_first_event_and_is_not_extended():
    state = UserState()
    first = go(like("e1"), P, state, T0)
    assert first.deliveries == [] and first.counters[("held", "digest")] == 1
    assert first.holds_changed
    go(like("e2"), P, state, T0 + 10 * MINUTE)
    go(like("e3"), P, state, T0 + 14 * MINUTE)
    assert next_due_ms(state) == T0 + WINDOW  # not T0 + 14min + window

    assert flush_due(state, P, T0 + WINDOW - 1).deliveries == []
    flushed = flush_due(state, P, T0 + WINDOW)
    [d] = flushed.deliveries
    assert d.kind == DeliveryKind.DIGEST and d.reason == "digest_window"
    assert d.event_ids == ("e1", "e2", "e3") and d.item_count == 3
    assert d.title == "3 new notifications in social.like"
    assert flushed.counters[("folded", "digest")] == 3
    assert flushed.counters[("delivered", "email", "digest")] == 1


def test_next_event_after_a_flush_opens_a_new_window():
    state = UserState()
    go(like("e1"), P, state, T0)
    flush_due(state, P, T0 + WINDOW)
    go(like("e2"), P, state, T0 + WINDOW + MINUTE)
    assert next_due_ms(state) == T0 + WINDOW + MINUTE + WINDOW


def test_single_event_digest_goes_out_as_single():
    state = UserState()
    go(like("e1", digest_key="post-1"), P, state, T0)
    [d] = flush_due(state, P, T0 + WINDOW).deliveries
    assert d.kind == DeliveryKind.SINGLE
    assert (d.title, d.body, d.items, d.digest_key) == ("title e1", "body e1", (), "post-1")


def test_digest_key_groups_separately_from_category():
    state = UserState()
    go(like("a1", digest_key="post-a"), P, state, T0)
    go(like("b1", digest_key="post-b"), P, state, T0 + 1)
    go(like("a2", digest_key="post-a"), P, state, T0 + 2)
    go(like("c1"), P, state, T0 + 3)
    out = flush_due(state, P, T0 + WINDOW + 3).deliveries
    assert sorted(d.event_ids for d in out) == [("a1", "a2"), ("b1",), ("c1",)]
    assert {d.digest_key for d in out if d.kind == DeliveryKind.DIGEST} == {"post-a"}


def test_digest_is_per_channel():
    p = only(Channel.EMAIL, Channel.PUSH)
    state = UserState()
    go(like("e1"), p, state, T0)
    go(like("e2"), p, state, T0 + 1)
    out = flush_due(state, p, T0 + WINDOW).deliveries
    assert sorted((d.channel.key, d.event_ids) for d in out) == [
        ("email", ("e1", "e2")),
        ("push", ("e1", "e2")),
    ]


def test_items_are_the_newest_few_but_every_id_is_carried():
    settings = RouterSettings(digest_max_items=2)
    state = UserState()
    occurred = [5, 1, 9, 3]  # arrival order differs from occurrence order
    for i, t in enumerate(occurred):
        go(like(f"e{i}", occurred_at=T0 - 100 + t), P, state, T0 + i, settings=settings)
    [d] = flush_due(state, P, T0 + WINDOW, settings).deliveries
    assert d.event_ids == ("e0", "e1", "e2", "e3") and d.item_count == 4
    assert [i.event_id for i in d.items] == ["e2", "e0"]  # occurred 9, then 5
    assert d.body == "- title e2\n- title e0\nand 2 more"
    assert d.first_occurred_at == T0 - 99


def test_items_that_occurred_at_the_same_time_come_newest_arrival_first():
    # A burst sent in one go shares its occurred_at; the ids sort in no particular order.
    settings = RouterSettings(digest_max_items=3)
    state = UserState()
    arrivals = ["z", "b", "y", "a", "m"]
    for i, event_id in enumerate(arrivals):
        go(like(event_id, occurred_at=T0 - 100), P, state, T0 + i, settings=settings)
    [d] = flush_due(state, P, T0 + WINDOW, settings).deliveries
    assert [i.event_id for i in d.items] == ["m", "a", "y"]  # the last three to arrive
    assert d.event_ids == tuple(arrivals)


def test_a_later_occurrence_still_comes_before_later_arrivals():
    state = UserState()
    go(like("late", occurred_at=T0 + 5), P, state, T0)
    go(like("tie1", occurred_at=T0), P, state, T0 + 1)
    go(like("tie2", occurred_at=T0), P, state, T0 + 2)
    [d] = flush_due(state, P, T0 + WINDOW).deliveries
    assert [i.event_id for i in d.items] == ["late", "tie2", "tie1"]


def test_digest_priority_is_the_highest_held():
    from streams.core.model import Priority

    state = UserState()
    go(like("e1", priority=Priority.LOW), P, state, T0)
    go(like("e2", priority=Priority.HIGH), P, state, T0 + 1)
    [d] = flush_due(state, P, T0 + WINDOW).deliveries
    assert d.priority == Priority.HIGH


def test_expired_events_are_dropped_from_a_digest():
    state = UserState()
    go(like("e1", expires_at=T0 + MINUTE), P, state, T0)
    go(like("e2"), P, state, T0 + 1)
    go(like("e3"), P, state, T0 + 2)
    flushed = flush_due(state, P, T0 + WINDOW)
    [d] = flushed.deliveries
    assert d.event_ids == ("e2", "e3")
    assert flushed.counters[("dropped", "expired")] == 1


def test_hold_is_dropped_if_the_channel_was_disabled_meanwhile():
    state = UserState()
    go(like("e1"), P, state, T0)
    go(like("e2"), P, state, T0 + 1)
    flushed = flush_due(state, only(Channel.IN_APP), T0 + WINDOW)
    assert flushed.deliveries == [] and state.holds == {}
    assert flushed.counters[("dropped", "channel_disabled")] == 2


def test_flush_uses_the_current_address():
    from unit_helpers import cp, prefs

    state = UserState()
    go(like("e1"), P, state, T0)
    moved = prefs(channels=[cp(Channel.EMAIL, address="new@example.com")])
    [d] = flush_due(state, moved, T0 + WINDOW).deliveries
    assert d.address == "new@example.com"


def test_nothing_due_changes_nothing():
    state = UserState()
    go(like("e1"), P, state, T0)
    result = flush_due(state, P, T0 + 1)
    assert result.deliveries == [] and not result.changed and len(state.holds) == 1
