"""Router settings from environment variables.

| Variable | Default | Meaning |
|---|---|---|
| `NOTIPIPE_DEDUPE_RETENTION_S` | `86400` | Seconds an `event_id` is remembered for dedupe |
| `NOTIPIPE_DIGEST_WINDOW_S` | `900` | Digest window, seconds; opens at the first held event |
| `NOTIPIPE_THROTTLE_WINDOW_S` | `3600` | Fixed throttle window, seconds (epoch-aligned) |
| `NOTIPIPE_THROTTLE_LIMIT` | `10` | Deliveries per user and channel per window; `0` = off |
| `NOTIPIPE_THROTTLE_LIMIT_<CHANNEL>` | unset | Per-channel override, e.g. `..._SMS=3` |
| `NOTIPIPE_DEFAULT_CHANNELS` | `in_app,email` | Channels on for users without preferences |
| `NOTIPIPE_DIGEST_CATEGORIES` | `social.like,social.follow` | Digested unless the user says no |
| `NOTIPIPE_MANDATORY_CATEGORIES` | `security,billing` | Categories that cannot be muted |
| `NOTIPIPE_DIGEST_MAX_ITEMS` | `5` | Newest items rendered into a digest |
| `NOTIPIPE_CHANNELS` | `email,sms,push,in_app` | Channels this deployment serves |

A channel missing from a user's preferences behaves as for a user without preferences. Category
lists are hierarchical: `social` covers `social.like`. Every event id is carried by a digest, only
the rendering is limited by `DIGEST_MAX_ITEMS`. Events for channels not served are dropped and
counted. Per-user throttle limits in the preferences override `THROTTLE_LIMIT*`.

Durations accept fractions (`0.5`) so integration tests can use sub-second windows. Lists are
comma-separated; channel names are case-insensitive. An empty list variable means an empty list.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from streams.core.model import CHANNEL_ORDER, Channel

PREFIX = "NOTIPIPE_"


class ConfigError(ValueError):
    """A setting has a bad value; the message names the variable, the value and what is expected."""

    def __init__(self, variable: str, value: str, expected: str) -> None:
        self.variable = variable
        self.value = value
        self.expected = expected
        super().__init__(f"{variable}={value!r} is invalid: expected {expected}")


@dataclass(slots=True, frozen=True)
class RouterSettings:
    dedupe_retention_ms: int = 86_400_000
    digest_window_ms: int = 900_000
    throttle_window_ms: int = 3_600_000
    throttle_limit: int = 10
    throttle_limits: Mapping[Channel, int] = field(default_factory=dict)
    default_channels: tuple[Channel, ...] = (Channel.IN_APP, Channel.EMAIL)
    digest_categories: frozenset[str] = frozenset({"social.like", "social.follow"})
    mandatory_categories: frozenset[str] = frozenset({"security", "billing"})
    digest_max_items: int = 5
    channels: frozenset[Channel] = frozenset(Channel)

    def __post_init__(self) -> None:
        for name in ("dedupe_retention_ms", "digest_window_ms", "throttle_window_ms"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.throttle_limit < 0 or any(v < 0 for v in self.throttle_limits.values()):
            raise ValueError("throttle limits must be >= 0 (0 = unlimited)")
        if self.digest_max_items < 1:
            raise ValueError("digest_max_items must be >= 1")

    def throttle_limit_for(self, channel: Channel) -> int:
        """Deployment default for a channel; 0 means unlimited."""
        return self.throttle_limits.get(channel, self.throttle_limit)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> RouterSettings:
        env = _Env(environ)
        d = cls()  # slots dataclass: defaults live on an instance, not on the class
        served = env.channels("CHANNELS", d.channels)
        if env.raw("DEFAULT_CHANNELS") is None:
            # Unset: the built-in defaults this deployment serves.
            defaults = [c for c in d.default_channels if c in served]
        else:
            defaults = env.channels("DEFAULT_CHANNELS", d.default_channels)
            not_served = [c.key for c in defaults if c not in served]
            if not_served:
                raise ConfigError(
                    PREFIX + "DEFAULT_CHANNELS",
                    env.raw("DEFAULT_CHANNELS") or "",
                    "channels served by this deployment (NOTIPIPE_CHANNELS); "
                    f"not served: {', '.join(not_served)}",
                )
        limits = {}
        for ch in CHANNEL_ORDER:
            value = env.integer(f"THROTTLE_LIMIT_{ch.value}", None, minimum=0)
            if value is not None:
                limits[ch] = value
        return cls(
            dedupe_retention_ms=env.seconds_as_ms("DEDUPE_RETENTION_S", d.dedupe_retention_ms),
            digest_window_ms=env.seconds_as_ms("DIGEST_WINDOW_S", d.digest_window_ms),
            throttle_window_ms=env.seconds_as_ms("THROTTLE_WINDOW_S", d.throttle_window_ms),
            throttle_limit=env.integer("THROTTLE_LIMIT", d.throttle_limit, minimum=0),
            throttle_limits=limits,
            default_channels=tuple(defaults),
            digest_categories=env.names("DIGEST_CATEGORIES", d.digest_categories),
            mandatory_categories=env.names("MANDATORY_CATEGORIES", d.mandatory_categories),
            digest_max_items=env.integer("DIGEST_MAX_ITEMS", d.digest_max_items, minimum=1),
            channels=frozenset(served),
        )


class _Env:
    """Typed reads of NOTIPIPE_* variables; every failure is a ConfigError."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def raw(self, name: str) -> str | None:
        return self._environ.get(PREFIX + name)

    def seconds_as_ms(self, name: str, default_ms: int) -> int:
        raw = self.raw(name)
        if raw is None:
            return default_ms
        try:
            seconds = float(raw)
        except ValueError:
            seconds = math.nan
        if not (math.isfinite(seconds) and round(seconds * 1000) > 0):
            raise ConfigError(
                PREFIX + name, raw, "a positive number of seconds (at least 0.001), e.g. 900 or 0.5"
            )
        return round(seconds * 1000)

    def integer(self, name: str, default: int | None, *, minimum: int) -> int | None:
        raw = self.raw(name)
        if raw is None:
            return default
        try:
            value = int(raw.strip())
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise ConfigError(PREFIX + name, raw, f"an integer >= {minimum}")
        return value

    def names(self, name: str, default: frozenset[str]) -> frozenset[str]:
        raw = self.raw(name)
        if raw is None:
            return default
        return frozenset(p.strip() for p in raw.split(",") if p.strip())

    def channels(
        self, name: str, default: tuple[Channel, ...] | frozenset[Channel]
    ) -> list[Channel]:
        raw = self.raw(name)
        if raw is None:
            return (
                list(default)
                if isinstance(default, tuple)
                else [c for c in CHANNEL_ORDER if c in default]
            )
        out: list[Channel] = []
        for part in raw.split(","):
            if not part.strip():
                continue
            try:
                ch = Channel.parse(part)
            except ValueError:
                raise ConfigError(
                    PREFIX + name,
                    raw,
                    "a comma-separated list of channels from "
                    + ", ".join(c.key for c in CHANNEL_ORDER)
                    + f" (unknown: {part.strip()!r})",
                ) from None
            if ch not in out:
                out.append(ch)
        return out
