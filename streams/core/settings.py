"""The routing rules' settings: windows, limits, default channels and categories.

A channel missing from a user's preferences behaves as for a user without preferences. Category
lists are hierarchical: `social` covers `social.like`. Every event id is carried by a digest; only
the rendering is limited by `DIGEST_MAX_ITEMS`. Events for channels not served are dropped and
counted. Per-user throttle limits in the preferences override `THROTTLE_LIMIT*`, and per-user
fallback chains override `FALLBACKS`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streams.core.config import (
    PREFIX,
    ConfigError,
    Invalid,
    Parser,
    at_least,
    env,
    family,
    load,
    names,
    seconds_as_ms,
)
from streams.core.model import CHANNEL_ORDER, Channel, FallbackChain

__all__ = ["ConfigError", "RouterSettings"]


def _channels(text: str) -> tuple[Channel, ...]:
    found: list[Channel] = []
    for part in text.split(","):
        if not part.strip():
            continue
        try:
            channel = Channel.parse(part)
        except ValueError:
            raise Invalid(f"unknown: {part.strip()!r}") from None
        if channel not in found:
            found.append(channel)
    return tuple(found)


CHANNEL_LIST = Parser(_channels, "a comma-separated list of channels from "
                      + ", ".join(c.key for c in CHANNEL_ORDER), empty=())


def fallback_chains(text: str) -> dict[str, FallbackChain]:
    """``security=push>sms>email/30,billing=email>sms``: per category, channels in turn and an
    optional timeout in seconds. Raises ``Invalid`` saying what is wrong."""
    chains: dict[str, FallbackChain] = {}
    for entry in text.split(","):
        if not entry.strip():
            continue
        category, equals, rest = entry.partition("=")
        category = category.strip()
        if not equals or not category:
            raise Invalid(f"{entry.strip()!r} is not <category>=<channel>><channel>...")
        if category in chains:
            raise Invalid(f"category {category!r} is given twice")
        names, slash, timeout = rest.partition("/")
        channels: list[Channel] = []
        for name in names.split(">"):
            try:
                channel = Channel.parse(name)
            except ValueError:
                raise Invalid(f"unknown channel {name.strip()!r} for {category!r}") from None
            if channel in channels:
                raise Invalid(f"{category!r} names {channel.key} twice")
            channels.append(channel)
        if len(channels) < 2:
            raise Invalid(f"{category!r} needs at least two channels to fall back from one to another")
        timeout_ms = None
        if slash:
            try:
                timeout_ms = SECONDS.parse(timeout.strip())
            except ValueError:
                raise Invalid(f"timeout {timeout.strip()!r} of {category!r} is not a positive "
                              "number of seconds") from None
        chains[category] = FallbackChain(tuple(channels), timeout_ms)
    return chains


SECONDS = seconds_as_ms()
FALLBACK_CHAINS = Parser(fallback_chains, "comma-separated <category>=<channel>><channel>[>...]"
                         "[/<timeout seconds>] entries, e.g. security=push>sms>email/30", empty={})


@dataclass(slots=True, frozen=True)
class RouterSettings:
    dedupe_retention_ms: int = env("DEDUPE_RETENTION_S", 86_400_000, "Seconds an `event_id` is "
                                   "remembered for dedupe", seconds_as_ms(), shown="`86400`")
    digest_window_ms: int = env("DIGEST_WINDOW_S", 900_000, "Digest window, seconds; it opens at "
                                "the first held event", seconds_as_ms(), shown="`900`")
    throttle_window_ms: int = env("THROTTLE_WINDOW_S", 3_600_000, "Fixed throttle window, seconds "
                                  "(epoch-aligned)", seconds_as_ms(), shown="`3600`")
    throttle_limit: int = env("THROTTLE_LIMIT", 10, "Deliveries per user and channel per window; "
                              "`0` = off", at_least(0))
    throttle_limits: Mapping[Channel, int] = family(
        "THROTTLE_LIMIT", [c.value for c in CHANNEL_ORDER],
        "Per-channel throttle limit, e.g. `NOTIPIPE_THROTTLE_LIMIT_SMS=3`", at_least(0))
    default_channels: tuple[Channel, ...] = env(
        "DEFAULT_CHANNELS", (Channel.IN_APP, Channel.EMAIL), "Channels on for users without "
        "preferences (unset: these, less any not served)", CHANNEL_LIST, shown="`in_app,email`")
    digest_categories: frozenset[str] = env(
        "DIGEST_CATEGORIES", frozenset({"social.like", "social.follow"}),
        "Categories digested unless the user says otherwise", names())
    mandatory_categories: frozenset[str] = env(
        "MANDATORY_CATEGORIES", frozenset({"security", "billing"}),
        "Categories that cannot be muted", names())
    digest_max_items: int = env("DIGEST_MAX_ITEMS", 5, "Newest items rendered into a digest",
                                at_least(1))
    channels: frozenset[Channel] = env("CHANNELS", frozenset(Channel), "Channels this deployment "
                                       "serves", CHANNEL_LIST, shown="`email,sms,push,in_app`")
    fallbacks: Mapping[str, FallbackChain] = env(
        "FALLBACKS", {}, "Per-category channels to try in turn when a delivery bounces, fails or "
        "is not confirmed in time, e.g. `security=push>sms>email/30,billing=email>sms` (timeout "
        "in seconds; the most specific category wins; users' own chains override these)",
        FALLBACK_CHAINS, shown="unset")
    fallback_timeout_ms: int = env("FALLBACK_TIMEOUT_S", 300_000, "Seconds to wait for a "
                                   "delivered receipt when a chain names no timeout",
                                   seconds_as_ms(), shown="`300`")

    def __post_init__(self) -> None:
        for name in ("dedupe_retention_ms", "digest_window_ms", "throttle_window_ms"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.throttle_limit < 0 or any(v < 0 for v in self.throttle_limits.values()):
            raise ValueError("throttle limits must be >= 0 (0 = unlimited)")
        if self.digest_max_items < 1:
            raise ValueError("digest_max_items must be >= 1")
        if self.fallback_timeout_ms <= 0:
            raise ValueError("fallback_timeout_ms must be > 0")
        for category, chain in self.fallbacks.items():
            if len(set(chain.channels)) != len(chain.channels) or len(chain.channels) < 2:
                raise ValueError(f"fallback chain of {category!r}: two or more distinct channels")
            if chain.timeout_ms is not None and chain.timeout_ms <= 0:
                raise ValueError(f"fallback chain of {category!r}: timeout must be > 0")

    def throttle_limit_for(self, channel: Channel) -> int:
        """Deployment default for a channel; 0 means unlimited."""
        return self.throttle_limits.get(channel, self.throttle_limit)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> RouterSettings:
        return load(cls, environ)

    @staticmethod
    def resolve(values: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
        served = frozenset(values.get("channels", frozenset(Channel)))
        values["channels"] = served
        if "default_channels" not in values:  # unset: the built-in defaults this deployment serves
            values["default_channels"] = tuple(c for c in (Channel.IN_APP, Channel.EMAIL)
                                               if c in served)
        else:
            not_served = [c.key for c in values["default_channels"] if c not in served]
            if not_served:
                raise ConfigError(PREFIX + "DEFAULT_CHANNELS", environ[PREFIX + "DEFAULT_CHANNELS"],
                                  "channels served by this deployment (NOTIPIPE_CHANNELS); "
                                  f"not served: {', '.join(not_served)}")
        unserved = sorted({c.key for chain in values.get("fallbacks", {}).values()
                           for c in chain.channels if c not in served})
        if unserved:
            raise ConfigError(PREFIX + "FALLBACKS", environ[PREFIX + "FALLBACKS"],
                              "channels served by this deployment (NOTIPIPE_CHANNELS); not "
                              f"served: {', '.join(unserved)}")
        if "throttle_limits" in values:
            values["throttle_limits"] = {Channel(k): v for k, v in values["throttle_limits"].items()}
        return values
