"""Fallback chains: the next channel after a bounce, a failure or a timeout, never after a
confirming receipt, and under the same rules as any delivery on that channel."""

from __future__ import annotations

import orjson
import pytest
from unit_helpers import MINUTE, SECOND, T0, cp, event, go, prefs

from streams.core.config import ConfigError
from streams.core.model import (
    Channel,
    DeliveryKind,
    FallbackChain,
    Preferences,
    Priority,
    Receipt,
    ReceiptStatus,
)
from streams.core.routing import UserState, flush_due, next_due_ms
from streams.core.routing.deliveries import delivery_id, fallback_delivery_id
from streams.core.routing.fallback import on_receipt
from streams.core.routing.state import HOLD_QUIET, HOLD_THROTTLE, hold_key
from streams.core.routing.validation import (
    InvalidPreferences,
    InvalidReceipt,
    decode_preferences,
    validate_preferences,
    validate_receipt,
)
from streams.core.settings import RouterSettings

PUSH, SMS, EMAIL, IN_APP = Channel.PUSH, Channel.SMS, Channel.EMAIL, Channel.IN_APP
TIMEOUT = 30 * SECOND
RULES = RouterSettings(fallbacks={"security": FallbackChain((PUSH, SMS, EMAIL), TIMEOUT)})
EVERYONE = prefs()  # every channel enabled and addressed


def login(event_id: str = "e1", **kw):
    return event(event_id, category="security.login", **kw)


def receipt(delivery: str, status: ReceiptStatus, user: str = "u1", now: int = T0) -> Receipt:
    return Receipt(delivery, user, PUSH, status, reported_at=now, received_at=now)


def started(p: Preferences = EVERYONE, rules: RouterSettings = RULES, **kw):
    """A login routed at T0: (its state, the push delivery the chain starts with)."""
    state = UserState()
    result = go(login(**kw), p, state, T0, settings=rules)
    [first] = [d for d in result.deliveries if d.channel == PUSH]
    return state, first, result


# -- starting a chain ---------------------------------------------------------------------------
def test_an_event_goes_out_on_the_chains_first_channel_and_the_rest_is_kept_back() -> None:
    state, first, result = started()
    assert sorted(d.channel.key for d in result.deliveries) == ["in_app", "push"]  # in-app: no chain
    assert first.fallback_of is None and first.reason == "immediate"
    [pending] = state.fallbacks.values()
    assert (pending.delivery_id, pending.remaining) == (first.delivery_id, [SMS, EMAIL])
    assert next_due_ms(state) == T0 + TIMEOUT
    assert result.holds_changed and result.counters[("fallback", "watched")] == 1


def test_without_a_chain_nothing_is_watched_or_kept_back() -> None:
    state = UserState()
    result = go(login(), EVERYONE, state, T0)  # default settings: no fallbacks
    assert sorted(d.channel.key for d in result.deliveries) == ["email", "in_app", "push", "sms"]
    assert not state.fallbacks and next_due_ms(state) is None and not result.holds_changed


def test_the_chain_starts_on_the_first_channel_the_user_can_get_it_on() -> None:
    no_push = prefs(channels=[cp(PUSH, address=None), cp(SMS), cp(EMAIL), cp(IN_APP)])
    state, _, result = go_and_first(no_push)
    assert [d.channel for d in result.deliveries] == [SMS, IN_APP]
    assert result.counters[("dropped", "no_address")] == 1
    [pending] = state.fallbacks.values()
    assert pending.channel == SMS and pending.remaining == [EMAIL]


def go_and_first(p: Preferences):
    state = UserState()
    result = go(login(), p, state, T0, settings=RULES)
    return state, result.deliveries[0], result


def test_an_event_restricted_to_some_channels_restricts_its_chain() -> None:
    state = UserState()
    result = go(login(channels=(PUSH, EMAIL)), EVERYONE, state, T0, settings=RULES)
    assert [d.channel for d in result.deliveries] == [PUSH]
    assert [p.remaining for p in state.fallbacks.values()] == [[EMAIL]]
    only_push = go(login("e2", channels=(PUSH,)), EVERYONE, UserState(), T0, settings=RULES)
    assert [d.channel for d in only_push.deliveries] == [PUSH] and not only_push.state.fallbacks


def test_a_held_first_delivery_starts_no_chain() -> None:
    quiet_now = prefs(quiet=(11 * 60, 13 * 60))  # T0 is 12:00 UTC
    state = UserState()
    result = go(login(), quiet_now, state, T0, settings=RULES)
    assert result.deliveries == [] and not state.fallbacks
    assert result.counters[("fallback", "first_held")] == 1
    assert set(state.holds) == {hold_key(PUSH, HOLD_QUIET, ""), hold_key(IN_APP, HOLD_QUIET, "")}


def test_a_replayed_event_does_not_start_its_chain_again() -> None:
    state = UserState()
    go(login(), EVERYONE, state, T0, pos=(0, 5), settings=RULES)
    first = next(iter(state.fallbacks))
    on_receipt(state, EVERYONE, receipt(first, ReceiptStatus.DELIVERED), T0 + SECOND, RULES)
    replayed = go(login(), EVERYONE, state, T0 + 2 * SECOND, pos=(0, 5), settings=RULES)
    assert [d.channel for d in replayed.deliveries] == [PUSH, IN_APP]  # re-sent, same ids
    assert not state.fallbacks and replayed.counters[("fallback", "watched")] == 0


# -- what settles a chain, and what sets it off ------------------------------------------------
def test_a_delivered_receipt_clears_the_fallback_and_the_deadline_sends_nothing() -> None:
    state, first, _ = started()
    result = on_receipt(state, EVERYONE, receipt(first.delivery_id, ReceiptStatus.DELIVERED), T0 + 1, RULES)
    assert result.deliveries == [] and result.changed and result.due_changed
    assert not state.fallbacks and next_due_ms(state) is None
    assert result.counters[("fallback", "cleared")] == result.counters[("receipt", "delivered")] == 1
    assert flush_due(state, EVERYONE, T0 + TIMEOUT, RULES).deliveries == []


def test_an_opened_receipt_clears_it_too() -> None:
    state, first, _ = started()
    on_receipt(state, EVERYONE, receipt(first.delivery_id, ReceiptStatus.OPENED), T0 + 1, RULES)
    assert not state.fallbacks


@pytest.mark.parametrize("status", [ReceiptStatus.BOUNCED, ReceiptStatus.FAILED])
def test_a_bounce_or_failure_sends_the_next_channel_at_once_linked_to_the_first(status) -> None:
    state, first, _ = started()
    result = on_receipt(state, EVERYONE, receipt(first.delivery_id, status), T0 + SECOND, RULES)
    [sms] = result.deliveries
    assert (sms.channel, sms.kind, sms.address) == (SMS, DeliveryKind.SINGLE, "+4915100000000")
    assert sms.fallback_of == first.delivery_id and sms.reason == f"fallback_{status.value.lower()}"
    assert (sms.title, sms.body, sms.event_ids) == (first.title, first.body, first.event_ids)
    assert sms.delivery_id == fallback_delivery_id("u1", SMS, first.delivery_id)
    assert sms.delivery_id != delivery_id("u1", SMS, DeliveryKind.SINGLE, first.event_ids)
    assert result.counters[("fallback", status.value.lower())] == result.counters[("fallback", "sent")] == 1
    # The fallback is watched in turn: its own bounce brings the last channel, linked to the first.
    [pending] = state.fallbacks.values()
    assert (pending.delivery_id, pending.remaining) == (sms.delivery_id, [EMAIL])
    assert next_due_ms(state) == T0 + SECOND + TIMEOUT
    [email] = on_receipt(state, EVERYONE, receipt(sms.delivery_id, status), T0 + 2 * SECOND, RULES).deliveries
    assert email.channel == EMAIL and email.fallback_of == first.delivery_id
    assert not state.fallbacks  # no channel left to watch for


def test_the_deadline_passing_sends_the_next_channel() -> None:
    state, first, _ = started()
    assert flush_due(state, EVERYONE, T0 + TIMEOUT - 1, RULES).deliveries == []
    flushed = flush_due(state, EVERYONE, T0 + TIMEOUT, RULES)
    [sms] = flushed.deliveries
    assert sms.channel == SMS and sms.reason == "fallback_timeout" and sms.fallback_of == first.delivery_id
    assert flushed.changed and flushed.counters[("fallback", "timeout")] == 1
    assert [d.channel for d in flush_due(state, EVERYONE, T0 + 2 * TIMEOUT, RULES).deliveries] == [EMAIL]


def test_a_receipt_after_the_fallback_went_is_late_and_sends_nothing() -> None:
    state, first, _ = started()
    [sms] = flush_due(state, EVERYONE, T0 + TIMEOUT, RULES).deliveries
    for status in (ReceiptStatus.DELIVERED, ReceiptStatus.BOUNCED):
        late = on_receipt(state, EVERYONE, receipt(first.delivery_id, status), T0 + TIMEOUT + 1, RULES)
        assert late.deliveries == [] and late.counters[("receipt", "late")] == 1
    assert [p.delivery_id for p in state.fallbacks.values()] == [sms.delivery_id]  # still watched


def test_a_receipt_for_a_delivery_nobody_watches_is_counted_as_unmatched() -> None:
    state = UserState(user_id="u1")
    result = on_receipt(state, None, receipt("unknown", ReceiptStatus.BOUNCED), T0, RULES)
    assert result.deliveries == [] and not result.changed
    assert result.counters[("receipt", "unmatched")] == result.counters[("receipt", "bounced")] == 1


def test_late_receipts_are_told_apart_for_the_dedupe_retention_only() -> None:
    state, first, _ = started()
    flush_due(state, EVERYONE, T0 + TIMEOUT, RULES)
    after = T0 + TIMEOUT + RULES.dedupe_retention_ms + 1
    result = on_receipt(state, EVERYONE, receipt(first.delivery_id, ReceiptStatus.OPENED), after, RULES)
    assert result.counters[("receipt", "unmatched")] == 1 and result.changed
    assert first.delivery_id not in state.fell_back


def test_an_expired_event_gets_no_fallback() -> None:
    state, first, _ = started(expires_at=T0 + 10 * SECOND)
    flushed = flush_due(state, EVERYONE, T0 + TIMEOUT, RULES)
    assert flushed.deliveries == [] and flushed.counters[("fallback", "expired")] == 1
    assert not state.fallbacks


# -- the fallback channel follows the rules of any delivery on it --------------------------------
@pytest.mark.parametrize(("sms", "reason"), [
    (cp(SMS, enabled=False), "channel_disabled"),
    (cp(SMS, address=None), "no_address"),
])
def test_a_channel_the_user_cannot_get_it_on_is_skipped_for_the_next(sms, reason) -> None:
    state, first, _ = started()
    p = prefs(channels=[cp(PUSH), sms, cp(EMAIL), cp(IN_APP)])  # changed since the chain started
    result = on_receipt(state, p, receipt(first.delivery_id, ReceiptStatus.BOUNCED), T0 + 1, RULES)
    assert [d.channel for d in result.deliveries] == [EMAIL]
    assert result.counters[("dropped", reason)] == 1


def test_a_channel_muted_since_the_chain_started_is_skipped() -> None:
    state, first, _ = started()
    muted = prefs(muted_by_channel={SMS: frozenset({"security"})})
    rules = RouterSettings(fallbacks=RULES.fallbacks, mandatory_categories=frozenset())
    result = on_receipt(state, muted, receipt(first.delivery_id, ReceiptStatus.FAILED), T0 + 1, rules)
    assert [d.channel for d in result.deliveries] == [EMAIL]
    assert result.counters[("dropped", "muted")] == 1


def test_with_no_channel_left_the_chain_is_exhausted() -> None:
    state, first, _ = started()
    gone = prefs(channels=[cp(PUSH), cp(SMS, enabled=False), cp(EMAIL, enabled=False), cp(IN_APP)])
    result = on_receipt(state, gone, receipt(first.delivery_id, ReceiptStatus.BOUNCED), T0 + 1, RULES)
    assert result.deliveries == [] and result.counters[("fallback", "exhausted")] == 1
    assert not state.fallbacks


def test_quiet_hours_hold_the_fallback_until_they_end() -> None:
    # Quiet from 12:01 to 13:00 UTC: the login at 12:00 goes out, its fallback at 12:00:30 waits.
    quiet_soon = prefs(quiet=(12 * 60 + 1, 13 * 60))
    rules = RouterSettings(fallbacks={"security": FallbackChain((PUSH, SMS, EMAIL), 5 * MINUTE)})
    state, first, _ = started(quiet_soon, rules)
    flushed = flush_due(state, quiet_soon, T0 + 5 * MINUTE, rules)
    assert flushed.deliveries == []
    assert flushed.counters[("fallback", "held")] == flushed.counters[("held", "quiet_hours")] == 1
    assert not state.fallbacks and next_due_ms(state) == T0 + 60 * MINUTE
    [sms] = flush_due(state, quiet_soon, T0 + 60 * MINUTE, rules).deliveries
    assert (sms.channel, sms.reason, sms.event_ids) == (SMS, "quiet_hours_end", first.event_ids)


def test_a_critical_fallback_is_not_held_by_quiet_hours() -> None:
    quiet_soon = prefs(quiet=(12 * 60 + 1, 13 * 60))
    state, _, _ = started(quiet_soon, priority=Priority.CRITICAL)
    [sms] = flush_due(state, quiet_soon, T0 + TIMEOUT, RULES).deliveries
    assert sms.channel == SMS and sms.reason == "fallback_timeout"


def test_a_full_throttle_window_folds_the_fallback_into_its_digest() -> None:
    p = prefs(channels=[cp(PUSH), cp(SMS, throttle_limit=1), cp(EMAIL), cp(IN_APP)])
    state, first, _ = started(p)
    go(event("n1", category="news", channels=(SMS,)), p, state, T0 + 1, settings=RULES)  # uses it up
    result = on_receipt(state, p, receipt(first.delivery_id, ReceiptStatus.BOUNCED), T0 + 2, RULES)
    assert result.deliveries == [] and result.counters[("held", "throttle")] == 1
    hold = state.holds[hold_key(SMS, HOLD_THROTTLE, "")]
    assert hold.event_ids == list(first.event_ids)


# -- where chains come from ----------------------------------------------------------------------
def test_the_users_chain_overrides_the_deployments_and_the_most_specific_category_wins() -> None:
    own = prefs(fallbacks={"security": FallbackChain((EMAIL, SMS), None),
                           "security.login": FallbackChain((SMS, PUSH), 60 * SECOND)})
    state = UserState()
    result = go(login(), own, state, T0, settings=RULES)
    assert sorted(d.channel.key for d in result.deliveries) == ["email", "in_app", "sms"]
    [pending] = state.fallbacks.values()
    assert (pending.channel, pending.remaining, pending.due_at_ms) == (SMS, [PUSH], T0 + 60 * SECOND)


def test_a_users_chain_of_one_channel_turns_fallback_off_for_the_category() -> None:
    off = prefs(fallbacks={"security": FallbackChain((PUSH,))})
    state = UserState()
    result = go(login(), off, state, T0, settings=RULES)
    assert len(result.deliveries) == 4 and not state.fallbacks


def test_a_chain_without_timeout_waits_the_configured_default() -> None:
    rules = RouterSettings(fallbacks={"security": FallbackChain((PUSH, SMS))},
                           fallback_timeout_ms=90 * SECOND)
    state, _, _ = started(rules=rules)
    assert next_due_ms(state) == T0 + 90 * SECOND


def test_deployment_chains_are_parsed_from_the_environment() -> None:
    rules = RouterSettings.from_env({"NOTIPIPE_FALLBACKS": "security=push>sms>email/30, billing=email>SMS",
                                     "NOTIPIPE_FALLBACK_TIMEOUT_S": "120"})
    assert rules.fallbacks == {"security": FallbackChain((PUSH, SMS, EMAIL), 30 * SECOND),
                               "billing": FallbackChain((EMAIL, SMS), None)}
    assert rules.fallback_timeout_ms == 120 * SECOND
    assert RouterSettings.from_env({"NOTIPIPE_FALLBACKS": ""}).fallbacks == {}


@pytest.mark.parametrize(("value", "says"), [
    ("security", "is not <category>=<channel>"),
    ("security=push", "at least two channels"),
    ("security=push>fax", "unknown channel 'fax'"),
    ("security=push>sms>push", "names push twice"),
    ("a=push>sms,a=sms>email", "given twice"),
    ("a=push>sms/0", "timeout '0'"),
    ("a=push>sms/soon", "timeout 'soon'"),
])
def test_a_bad_chain_is_refused_naming_the_variable_and_the_problem(value: str, says: str) -> None:
    with pytest.raises(ConfigError) as error:
        RouterSettings.from_env({"NOTIPIPE_FALLBACKS": value})
    assert error.value.variable == "NOTIPIPE_FALLBACKS" and says in str(error.value)


def test_a_chain_through_a_channel_the_deployment_does_not_serve_is_refused() -> None:
    with pytest.raises(ConfigError, match="not served: sms"):
        RouterSettings.from_env({"NOTIPIPE_FALLBACKS": "security=push>sms",
                                 "NOTIPIPE_CHANNELS": "push,email,in_app"})


def test_users_chains_travel_in_the_preferences_and_bad_ones_are_refused() -> None:
    own = prefs(fallbacks={"security": FallbackChain((PUSH, SMS), 45 * SECOND),
                           "billing": FallbackChain((EMAIL, SMS))})
    assert decode_preferences(own.to_avro()) == own
    for bad in (FallbackChain((PUSH, PUSH)), FallbackChain((PUSH, SMS), 0)):
        with pytest.raises(InvalidPreferences, match="bad_fallback"):
            validate_preferences(prefs(fallbacks={"security": bad}))


def test_a_receipt_keyed_by_another_user_is_refused() -> None:
    with pytest.raises(InvalidReceipt, match="key_mismatch"):
        validate_receipt(receipt("d1", ReceiptStatus.DELIVERED), b"someone-else")
    with pytest.raises(InvalidReceipt, match="missing_delivery_id"):
        validate_receipt(receipt(" ", ReceiptStatus.DELIVERED), b"u1")


# -- the state -----------------------------------------------------------------------------------
def test_pending_fallbacks_survive_the_round_trip_through_the_table() -> None:
    state, first, _ = started(digest_key="k", expires_at=T0 + 3_600_000)
    [sms] = flush_due(state, EVERYONE, T0 + TIMEOUT, RULES).deliveries  # one watched, one fell back
    stored = orjson.loads(orjson.dumps(state.to_dict()))
    again = UserState.from_dict(stored)
    assert again == state and again.fell_back == {first.delivery_id: T0 + TIMEOUT}
    assert next_due_ms(again) == T0 + 2 * TIMEOUT
    [email] = flush_due(again, EVERYONE, T0 + 2 * TIMEOUT, RULES).deliveries
    assert (email.fallback_of, email.digest_key) == (first.delivery_id, "k")


def test_a_state_with_nothing_but_a_settled_chain_is_kept_until_late_receipts_are_forgotten() -> None:
    state = UserState(user_id="u1", fell_back={"d1": T0})
    assert not state.is_empty()
    go(event("n1"), None, state, T0 + RULES.dedupe_retention_ms + 1, settings=RULES)
    assert state.fell_back == {}


def test_the_cli_takes_a_users_chain_per_flag_with_a_timeout_in_whole_seconds() -> None:
    import argparse

    from streams.client.cli import _fallback

    assert _fallback("security=push>sms/30") == ("security", FallbackChain((PUSH, SMS), 30 * SECOND))
    for bad, says in (("security=push", "at least two"), ("a=push>sms/1.5", "whole seconds"),
                      ("a=push>sms,b=sms>push", "one CATEGORY")):
        with pytest.raises(argparse.ArgumentTypeError, match=says):
            _fallback(bad)
