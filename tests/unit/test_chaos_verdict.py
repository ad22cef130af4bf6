"""The verifier's judgement (chaos/verdict.py) and its ledger (chaos/ledger.py), without a stack:
it must catch a dropped delivery, a doubled one, one out of order and a dead letter, and let a
redelivery of the same delivery_id pass as absorbed."""

from __future__ import annotations

from chaos.ledger import Ledger, LedgerSpec
from chaos.verdict import Observed, Seen, judge
from streams.core.model import Channel
from streams.core.settings import RouterSettings

EXPECTED = {("u1", "email", "e1"), ("u1", "in_app", "e1"), ("u1", "email", "e2"),
            ("u2", "in_app", "e3")}


def clean() -> Observed:
    """Every view as a correct run leaves it: d3 is a digest of e2 (and e1 went alone)."""
    topics = [Seen("d1", "u1", "email", ("e1",), 0), Seen("d2", "u1", "in_app", ("e1",), 0),
              Seen("d3", "u1", "email", ("e2",), 1), Seen("d4", "u2", "in_app", ("e3",), 0)]
    gateway = [Seen("d1", "u1", "email", ("e1",), 10), Seen("d3", "u1", "email", ("e2",), 11)]
    return Observed(topics=list(topics), delivery_log=list(topics),
                    inbox=[s for s in topics if s.channel == "in_app"], gateway=gateway,
                    gateway_attempts=2)


def test_a_clean_run_passes() -> None:
    verdict = judge(EXPECTED, clean(), drained=True, drain_s=1.0)
    assert verdict.ok, verdict.problems()
    assert [(v.name, v.expected, v.arrived) for v in verdict.views] == [
        ("topics", 4, 4), ("delivery_log", 4, 4), ("inbox", 2, 2), ("gateway", 2, 2)]


def test_a_row_deleted_from_the_inbox_is_lost() -> None:
    observed = clean()
    observed.inbox = [s for s in observed.inbox if s.delivery_id != "d4"]
    verdict = judge(EXPECTED, observed, drained=True, drain_s=1.0)
    assert not verdict.ok
    assert verdict.lost == 1 and verdict.view("inbox").lost == [("u2", "in_app", "e3")]
    assert "inbox: lost ('u2', 'in_app', 'e3')" in verdict.problems()


def test_a_request_missing_at_the_gateway_is_lost() -> None:
    observed = clean()
    observed.gateway = observed.gateway[:1]
    verdict = judge(EXPECTED, observed, drained=True, drain_s=1.0)
    assert verdict.view("gateway").lost == [("u1", "email", "e2")] and not verdict.ok


def test_an_event_in_two_different_deliveries_is_doubled() -> None:
    observed = clean()
    # e2 also went out in a digest of its own: two delivery ids for one arrival.
    observed.delivery_log.append(Seen("d9", "u1", "email", ("e2",)))
    verdict = judge(EXPECTED, observed, drained=True, drain_s=1.0)
    assert not verdict.ok
    assert verdict.doubled == 1
    assert verdict.view("delivery_log").doubled == {("u1", "email", "e2"): {"d3", "d9"}}


def test_the_same_delivery_id_again_is_absorbed_not_doubled() -> None:
    observed = clean()
    observed.topics.append(Seen("d1", "u1", "email", ("e1",), 5))  # a replay wrote it again
    observed.gateway.append(Seen("d1", "u1", "email", ("e1",), 12))  # and the sink sent it again
    verdict = judge(EXPECTED, observed, drained=True, drain_s=1.0)
    assert verdict.ok, verdict.problems()
    assert (verdict.view("topics").repeated, verdict.view("gateway").repeated) == (1, 1)


def test_an_arrival_the_rules_do_not_make_is_unexpected() -> None:
    observed = clean()
    observed.topics.append(Seen("d7", "u2", "email", ("e3",), 1))
    verdict = judge(EXPECTED, observed, drained=True, drain_s=1.0)
    assert verdict.view("topics").unexpected == [("u2", "email", "e3")] and not verdict.ok


def test_the_gateway_out_of_the_routers_order_fails() -> None:
    observed = clean()
    observed.gateway = [Seen("d3", "u1", "email", ("e2",), 10), Seen("d1", "u1", "email", ("e1",), 11)]
    verdict = judge(EXPECTED, observed, drained=True, drain_s=1.0)
    assert verdict.out_of_order == [("u1", "email")] and not verdict.ok


def test_a_dead_letter_or_a_lag_that_did_not_drain_fails() -> None:
    observed = clean()
    observed.dead_letters = {"p.notifications.dlq": 1, "p.notifications.sink-dlq.http": 0}
    assert not judge(EXPECTED, observed, drained=True, drain_s=1.0).ok
    assert not judge(EXPECTED, clean(), drained=False, drain_s=None).ok


# -- the ledger --------------------------------------------------------------------------------------
SETTINGS = RouterSettings.from_env({"NOTIPIPE_DIGEST_WINDOW_S": "3", "NOTIPIPE_THROTTLE_WINDOW_S": "10",
                                    "NOTIPIPE_THROTTLE_LIMIT": "0"})


def test_the_ledger_expects_every_event_on_each_channel_its_user_takes() -> None:
    ledger = Ledger("t", LedgerSpec(users=20, quiet=True, quiet_for_s=15), SETTINGS)
    now = 1_800_000_000_000
    for n in range(600):
        ledger.draw(now + n * 10)
    expected = ledger.expected()
    prefs = {p.user_id: p for p in ledger.preferences}
    events = {e.event_id: e for e in ledger.offered}
    assert len(events) < len(ledger.offered), "some ids were sent again"
    for user, channel, event_id in expected:
        event, preferences = events[event_id], prefs[user]
        assert event.user_id == user
        assert preferences.channels[Channel.parse(channel)].enabled
        assert event.channels is None or Channel.parse(channel) in event.channels
    for event in events.values():  # muted users get no social events; everyone gets in-app
        muted = bool(prefs[event.user_id].muted_categories) and event.category.startswith("social")
        assert ((event.user_id, "in_app", event.event_id) in expected) is not muted
    # Every rule is at work: digests (the digest categories), throttle folds, quiet holds.
    throttled = [p.user_id for p in ledger.preferences
                 if (p.channels[Channel.EMAIL].throttle_limit or 0) == 2]
    assert throttled and ledger.quiet_until_ms is not None
    assert any(p.quiet_hours for p in ledger.preferences)


def test_the_ledger_is_the_same_for_the_same_seed() -> None:
    first = Ledger("t", LedgerSpec(users=10, quiet=False), SETTINGS)
    second = Ledger("t", LedgerSpec(users=10, quiet=False), SETTINGS)
    for n in range(100):
        first.draw(1_800_000_000_000 + n)
        second.draw(1_800_000_000_000 + n)
    assert [e.event_id for e in first.offered] == [e.event_id for e in second.offered]
    assert first.expected() == second.expected()
