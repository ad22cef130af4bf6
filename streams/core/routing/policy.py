"""Who gets what where: channel selection, defaults, mutes, mandatory and digest categories.

Category rules are hierarchical: a rule for ``social`` applies to ``social.like``; the most
specific matching rule wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from functools import lru_cache

from streams.core.model import (
    CHANNEL_ORDER,
    Channel,
    ChannelPreference,
    DeliveryMode,
    Event,
    Preferences,
)
from streams.core.settings import RouterSettings

# A channel that is on by default and not configured by the user: enabled, no address.
_DEFAULT_PREFS = {ch: ChannelPreference(ch) for ch in Channel}

# Counter keys of the reasons a channel may not carry a category (see ``gate``).
DROPPED_MUTED = ("dropped", "muted")
DROPPED_DISABLED = ("dropped", "channel_disabled")
DROPPED_NO_ADDRESS = ("dropped", "no_address")
DROPPED_NOT_SERVED = ("dropped", "channel_not_served")


@lru_cache(maxsize=16384)
def category_prefixes(category: str) -> tuple[str, ...]:
    """``a.b.c`` -> (``a.b.c``, ``a.b``, ``a``): most specific first."""
    parts = category.split(".")
    return tuple(".".join(parts[:i]) for i in range(len(parts), 0, -1))


def category_in(category: str, names: AbstractSet[str]) -> bool:
    if not names:
        return False
    if category in names:
        return True
    if "." not in category:
        return False
    return any(prefix in names for prefix in category_prefixes(category))


def is_mandatory(category: str, settings: RouterSettings) -> bool:
    return category_in(category, settings.mandatory_categories)


def is_muted(prefs: Preferences | None, channel: Channel, category: str) -> bool:
    if prefs is None:
        return False
    if category_in(category, prefs.muted_categories):
        return True
    per_channel = prefs.muted_by_channel.get(channel)
    return per_channel is not None and category_in(category, per_channel)


def wants_digest(prefs: Preferences | None, category: str, settings: RouterSettings) -> bool:
    """The user's category mode wins; otherwise the deployment's digest categories decide."""
    if prefs is not None and prefs.category_modes:
        modes = prefs.category_modes
        for prefix in category_prefixes(category):
            mode = modes.get(prefix)
            if mode is not None:
                return mode == DeliveryMode.DIGEST
    return category_in(category, settings.digest_categories)


def channel_pref(
    prefs: Preferences | None, channel: Channel, settings: RouterSettings
) -> ChannelPreference | None:
    """The user's settings for a channel, the default for an unconfigured default channel, or
    None: the channel is off."""
    if prefs is not None:
        cp = prefs.channels.get(channel)
        if cp is not None:
            return cp
    return _DEFAULT_PREFS[channel] if channel in settings.default_channels else None


def target_channels(
    event: Event, prefs: Preferences | None, settings: RouterSettings
) -> Sequence[Channel]:
    """Channels to consider: the event's restriction, else the user's enabled channels."""
    if event.channels is not None:
        return event.channels if len(event.channels) < 2 else tuple(dict.fromkeys(event.channels))
    if prefs is None:
        return settings.default_channels
    chosen = []
    for ch in CHANNEL_ORDER:
        cp = prefs.channels.get(ch)
        if cp.enabled if cp is not None else ch in settings.default_channels:
            chosen.append(ch)
    return chosen


def address_for(cp: ChannelPreference, user_id: str) -> str | None:
    """Where to deliver; in-app needs no address beyond the user id."""
    if cp.address:
        return cp.address
    return user_id if cp.channel == Channel.IN_APP else None


def throttle_limit(cp: ChannelPreference, settings: RouterSettings) -> int:
    """Deliveries allowed per window; 0 = unlimited (deployment setting only)."""
    if cp.throttle_limit is not None:
        return max(cp.throttle_limit, 1)  # a user limit never disables throttling
    return settings.throttle_limit_for(cp.channel)


def gate(
    ch: Channel,
    prefs: Preferences | None,
    category: str,
    skip_mute: bool,
    user_id: str,
    settings: RouterSettings,
) -> tuple[ChannelPreference | None, str | None, tuple[str, str] | None]:
    """(channel prefs, address, None) if the channel may carry the category now, else
    (None, None, the counter key of the drop reason)."""
    if ch not in settings.channels:
        return None, None, DROPPED_NOT_SERVED
    if not skip_mute and is_muted(prefs, ch, category):
        return None, None, DROPPED_MUTED
    cp = channel_pref(prefs, ch, settings)
    if cp is None or not cp.enabled:
        return None, None, DROPPED_DISABLED
    address = address_for(cp, user_id)
    if address is None:
        return None, None, DROPPED_NO_ADDRESS
    return cp, address, None
