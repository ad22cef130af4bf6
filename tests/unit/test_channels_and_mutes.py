"""Rules 3-5: defaults for unknown users, channel choice, mutes, mandatory categories, addresses."""

from unit_helpers import T0, cp, event, go, kinds, only, prefs

from streams.core.model import Channel
from streams.core.settings import RouterSettings


def test_unknown_user_gets_default_channels():
    result = go(event(), None)
    # Defaults in_app,email: in-app goes to the user id; e-mail has no address to go to.
    assert kinds(result) == [("in_app", "SINGLE", "immediate")]
    assert result.deliveries[0].address == "u1"
    assert result.counters[("dropped", "no_address")] == 1


def test_defaults_follow_settings():
    settings = RouterSettings(default_channels=(Channel.IN_APP,))
    result = go(event(), None, settings=settings)
    assert kinds(result) == [("in_app", "SINGLE", "immediate")]
    assert result.counters[("dropped", "no_address")] == 0


def test_channel_missing_from_preferences_behaves_as_default():
    p = prefs(channels=[cp(Channel.EMAIL)])  # in_app unlisted (default on), sms/push unlisted (off)
    assert sorted(kinds(go(event(), p))) == [
        ("email", "SINGLE", "immediate"),
        ("in_app", "SINGLE", "immediate"),
    ]
    restricted = go(event(channels=(Channel.SMS,)), p)
    assert restricted.deliveries == []
    assert restricted.counters[("dropped", "channel_disabled")] == 1


def test_every_enabled_channel_is_used():
    result = go(event(), prefs())
    assert [k[0] for k in kinds(result)] == ["email", "sms", "push", "in_app"]
    assert {d.address for d in result.deliveries} == {
        "u1@example.com",
        "+4915100000000",
        "device-token-1",
        "u1",
    }


def test_event_channels_restrict_delivery():
    result = go(event(channels=(Channel.SMS,)), prefs())
    assert kinds(result) == [("sms", "SINGLE", "immediate")]


def test_disabled_channel_gets_nothing():
    result = go(event(channels=(Channel.EMAIL, Channel.PUSH)), only(Channel.EMAIL))
    assert kinds(result) == [("email", "SINGLE", "immediate")]
    assert result.counters[("dropped", "channel_disabled")] == 1


def test_missing_address_drops_that_channel_only():
    p = prefs(channels=[cp(Channel.EMAIL, address=None), cp(Channel.IN_APP)])
    result = go(event(), p)
    assert kinds(result) == [("in_app", "SINGLE", "immediate")]
    assert result.counters[("dropped", "no_address")] == 1


def test_global_mute_drops_every_channel():
    p = only(Channel.EMAIL, Channel.IN_APP, muted_categories=frozenset({"social.like"}))
    result = go(event(category="social.like"), p)
    assert result.deliveries == []
    assert result.counters[("dropped", "muted")] == 2


def test_mute_of_a_prefix_covers_children():
    p = only(Channel.EMAIL, muted_categories=frozenset({"social"}))
    assert go(event(category="social.comment"), p).counters[("dropped", "muted")] == 1
    assert kinds(go(event(category="socialite"), p)) == [("email", "SINGLE", "immediate")]


def test_per_channel_mute():
    p = only(
        Channel.EMAIL,
        Channel.IN_APP,
        muted_by_channel={Channel.EMAIL: frozenset({"news"})},
    )
    result = go(event(category="news"), p)
    assert kinds(result) == [("in_app", "SINGLE", "immediate")]
    assert result.counters[("dropped", "muted")] == 1


def test_mandatory_category_cannot_be_muted():
    p = only(
        Channel.EMAIL,
        Channel.IN_APP,
        muted_categories=frozenset({"security.login"}),
        muted_by_channel={Channel.IN_APP: frozenset({"security"})},
    )
    result = go(event(category="security.login"), p)
    assert sorted(kinds(result)) == [
        ("email", "SINGLE", "immediate"),
        ("in_app", "SINGLE", "immediate"),
    ]
    assert result.counters[("dropped", "muted")] == 0


def test_mandatory_category_does_not_override_a_disabled_channel():
    result = go(event(category="security.login", channels=(Channel.SMS,)), only(Channel.EMAIL))
    assert result.deliveries == []
    assert result.counters[("dropped", "channel_disabled")] == 1


def test_channel_not_served_by_the_deployment():
    settings = RouterSettings(channels=frozenset({Channel.EMAIL, Channel.IN_APP}))
    result = go(event(channels=(Channel.SMS, Channel.EMAIL)), prefs(), settings=settings)
    assert kinds(result) == [("email", "SINGLE", "immediate")]
    assert result.counters[("dropped", "channel_not_served")] == 1


def test_no_channel_at_all_is_counted():
    p = prefs(channels=[cp(ch, enabled=False) for ch in Channel])
    result = go(event(), p)
    assert result.deliveries == []
    assert result.counters[("dropped", "no_channel")] == 1


def test_expired_event_is_dropped():
    result = go(event(expires_at=T0), only(Channel.EMAIL), now=T0)
    assert result.deliveries == []
    assert result.counters[("dropped", "expired")] == 1
    assert go(event(expires_at=T0 + 1), only(Channel.EMAIL), now=T0).deliveries


def test_user_category_mode_overrides_digest_categories():
    from streams.core.model import DeliveryMode

    p = only(Channel.EMAIL, category_modes={"social": DeliveryMode.IMMEDIATE})
    assert kinds(go(event(category="social.like"), p)) == [("email", "SINGLE", "immediate")]
    p = only(Channel.EMAIL, category_modes={"news": DeliveryMode.DIGEST})
    assert go(event(category="news.daily"), p).counters[("held", "digest")] == 1
