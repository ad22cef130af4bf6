"""Deliveries are deterministic: the same input always yields the same delivery_id."""

import re

from unit_helpers import MINUTE, T0, event, go, only

from streams.core.model import Channel, DeliveryKind
from streams.core.routing import UserState, delivery_id, flush_due


def test_id_is_32_hex_and_ignores_event_order():
    a = delivery_id("u1", Channel.EMAIL, DeliveryKind.DIGEST, ["e2", "e1"])
    assert re.fullmatch(r"[0-9a-f]{32}", a)
    assert a == delivery_id("u1", Channel.EMAIL, DeliveryKind.DIGEST, ["e1", "e2"])


def test_id_depends_on_user_channel_kind_and_events():
    base = delivery_id("u1", Channel.EMAIL, DeliveryKind.SINGLE, ["e1"])
    assert base != delivery_id("u2", Channel.EMAIL, DeliveryKind.SINGLE, ["e1"])
    assert base != delivery_id("u1", Channel.SMS, DeliveryKind.SINGLE, ["e1"])
    assert base != delivery_id("u1", Channel.EMAIL, DeliveryKind.DIGEST, ["e1"])
    assert base != delivery_id("u1", Channel.EMAIL, DeliveryKind.SINGLE, ["e2"])
    # No ambiguity from concatenation: ("ab", "c") is not ("a", "bc").
    assert delivery_id("u", Channel.EMAIL, DeliveryKind.DIGEST, ["ab", "c"]) != delivery_id(
        "u", Channel.EMAIL, DeliveryKind.DIGEST, ["a", "bc"]
    )


def test_same_event_routed_twice_from_scratch_gives_equal_deliveries():
    p = only(Channel.EMAIL, Channel.IN_APP)
    first = go(event("e1"), p, UserState(), T0)
    second = go(event("e1"), p, UserState(), T0)
    assert first.deliveries == second.deliveries
    assert len({d.delivery_id for d in first.deliveries}) == 2  # one per channel


def test_digest_id_is_stable_across_arrival_order():
    p = only(Channel.EMAIL)
    ids = []
    for order in (["e1", "e2", "e3"], ["e3", "e1", "e2"]):
        state = UserState()
        for i, eid in enumerate(order):
            go(event(eid, category="social.like"), p, state, T0 + i)
        [d] = flush_due(state, p, T0 + 20 * MINUTE).deliveries
        ids.append(d.delivery_id)
    assert ids[0] == ids[1]
