"""RouterSettings.from_env: documented defaults, overrides, and errors that say what is wrong."""

import pytest

from streams.core.model import Channel
from streams.core.settings import ConfigError, RouterSettings


def test_defaults():
    s = RouterSettings.from_env({})
    assert s == RouterSettings()
    assert (s.dedupe_retention_ms, s.digest_window_ms, s.throttle_window_ms) == (
        86_400_000,
        900_000,
        3_600_000,
    )
    assert s.throttle_limit == 10 and s.digest_max_items == 5
    assert s.default_channels == (Channel.IN_APP, Channel.EMAIL)
    assert s.digest_categories == {"social.like", "social.follow"}
    assert s.mandatory_categories == {"security", "billing"}
    assert s.channels == set(Channel)


def test_every_variable_is_read():
    s = RouterSettings.from_env(
        {
            "NOTIPIPE_DEDUPE_RETENTION_S": "60",
            "NOTIPIPE_DIGEST_WINDOW_S": "0.5",
            "NOTIPIPE_THROTTLE_WINDOW_S": "2",
            "NOTIPIPE_THROTTLE_LIMIT": "3",
            "NOTIPIPE_THROTTLE_LIMIT_SMS": "1",
            "NOTIPIPE_THROTTLE_LIMIT_IN_APP": "0",
            "NOTIPIPE_DEFAULT_CHANNELS": "Email, in-app",
            "NOTIPIPE_DIGEST_CATEGORIES": " social , news.daily ,",
            "NOTIPIPE_MANDATORY_CATEGORIES": "",
            "NOTIPIPE_DIGEST_MAX_ITEMS": "2",
            "NOTIPIPE_CHANNELS": "email,in_app,sms",
        }
    )
    assert (s.dedupe_retention_ms, s.digest_window_ms, s.throttle_window_ms) == (60_000, 500, 2000)
    assert s.throttle_limit_for(Channel.EMAIL) == 3
    assert s.throttle_limit_for(Channel.SMS) == 1
    assert s.throttle_limit_for(Channel.IN_APP) == 0
    assert s.default_channels == (Channel.EMAIL, Channel.IN_APP)
    assert s.digest_categories == {"social", "news.daily"}
    assert s.mandatory_categories == frozenset()
    assert s.digest_max_items == 2
    assert s.channels == {Channel.EMAIL, Channel.IN_APP, Channel.SMS}


def test_unset_defaults_shrink_to_the_channels_served():
    s = RouterSettings.from_env({"NOTIPIPE_CHANNELS": "email,sms"})
    assert s.default_channels == (Channel.EMAIL,)


@pytest.mark.parametrize(
    ("env", "variable", "expected"),
    [
        ({"NOTIPIPE_DIGEST_WINDOW_S": "15m"}, "NOTIPIPE_DIGEST_WINDOW_S", "positive number"),
        ({"NOTIPIPE_THROTTLE_WINDOW_S": "0"}, "NOTIPIPE_THROTTLE_WINDOW_S", "positive number"),
        ({"NOTIPIPE_DEDUPE_RETENTION_S": "inf"}, "NOTIPIPE_DEDUPE_RETENTION_S", "positive"),
        ({"NOTIPIPE_THROTTLE_LIMIT": "-1"}, "NOTIPIPE_THROTTLE_LIMIT", "integer >= 0"),
        ({"NOTIPIPE_THROTTLE_LIMIT_PUSH": "x"}, "NOTIPIPE_THROTTLE_LIMIT_PUSH", "integer >= 0"),
        ({"NOTIPIPE_DIGEST_MAX_ITEMS": "0"}, "NOTIPIPE_DIGEST_MAX_ITEMS", "integer >= 1"),
        ({"NOTIPIPE_CHANNELS": "email,fax"}, "NOTIPIPE_CHANNELS", "unknown: 'fax'"),
        (
            {"NOTIPIPE_CHANNELS": "email", "NOTIPIPE_DEFAULT_CHANNELS": "in_app"},
            "NOTIPIPE_DEFAULT_CHANNELS",
            "not served: in_app",
        ),
    ],
)
def test_bad_values_name_variable_value_and_expectation(env, variable, expected):
    with pytest.raises(ConfigError) as info:
        RouterSettings.from_env(env)
    err = info.value
    assert err.variable == variable
    assert err.value == env[variable]
    message = str(err)
    assert message.startswith(f"{variable}={env[variable]!r} is invalid: expected ")
    assert expected in message
