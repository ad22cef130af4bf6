"""`notipipe send`, `notipipe prefs set|reset` and `notipipe tail`: the producer side by hand."""

from __future__ import annotations

import argparse
import json
import sys

from streams.client.sdk import ClientSettings, NotificationClient, now_ms, tail_deliveries
from streams.connection.kafka import KafkaAccessError, kafka_access
from streams.core.config import Invalid
from streams.core.model import (
    Channel,
    ChannelPreference,
    DeliveryMode,
    FallbackChain,
    Preferences,
    Priority,
    QuietHours,
)
from streams.core.routing.validation import InvalidRecord
from streams.core.settings import fallback_chains


def _minutes(text: str) -> int:
    hours, _, minutes = text.partition(":")
    value = int(hours) * 60 + int(minutes or 0)
    if not 0 <= value < 1440:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time of day HH:MM")
    return value


def _quiet(text: str) -> QuietHours:
    start, sep, end = text.partition("-")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r}: give quiet hours as HH:MM-HH:MM, e.g. 22:00-07:00")
    return QuietHours(_minutes(start), _minutes(end))


def _fallback(text: str) -> tuple[str, FallbackChain]:
    try:
        [(category, chain)] = fallback_chains(text).items()
    except Invalid as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: one CATEGORY=CHANNEL>CHANNEL[/SECONDS] per "
                                         "--fallback") from None
    if chain.timeout_ms is not None and (chain.timeout_ms % 1000 or chain.timeout_ms < 1000):
        raise argparse.ArgumentTypeError(f"{text!r}: a user's timeout is whole seconds, at least 1")
    return category, chain


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=VALUE")
    return key, value


def _producer_client() -> NotificationClient:
    settings = ClientSettings.from_env()
    kafka_access("producer", settings.bootstrap_servers).verify()  # a refusal says why, at once
    return NotificationClient(settings)


def cmd_send(args: argparse.Namespace) -> int:
    client = _producer_client()
    expires = now_ms() + int(args.expires_in * 1000) if args.expires_in is not None else None
    ids = []
    for _ in range(args.count):
        ids.append(client.send(
            user_id=args.user, category=args.category, title=args.title, body=args.body,
            template=args.template, data=dict(args.data), priority=args.priority,
            channels=args.channel, digest_key=args.digest_key,
            event_id=args.event_id if args.count == 1 else None, expires_at=expires,
            source="notipipe-cli"))
    client.flush()
    for event_id in ids:
        print(event_id)
    return 0


def cmd_prefs_set(args: argparse.Namespace) -> int:
    channels: dict[Channel, ChannelPreference] = {}
    for name, address in args.address:
        ch = Channel.parse(name)
        channels[ch] = ChannelPreference(ch, True, address or None)
    for name in args.disable:
        ch = Channel.parse(name)
        channels[ch] = ChannelPreference(ch, False, channels.get(ch, ChannelPreference(ch)).address)
    for name, limit in args.throttle:
        ch = Channel.parse(name)
        old = channels.get(ch, ChannelPreference(ch))
        channels[ch] = ChannelPreference(ch, old.enabled, old.address, int(limit))
    muted_by_channel: dict[Channel, frozenset[str]] = {}
    for name, category in args.mute_on:
        ch = Channel.parse(name)
        muted_by_channel[ch] = muted_by_channel.get(ch, frozenset()) | {category}
    modes = {c: DeliveryMode.DIGEST for c in args.digest}
    modes.update({c: DeliveryMode.IMMEDIATE for c in args.immediate})
    fallbacks = dict(args.fallback)
    fallbacks.update({category: FallbackChain(()) for category in args.no_fallback})
    prefs = Preferences(user_id=args.user, channels=channels, muted_categories=frozenset(args.mute),
                        muted_by_channel=muted_by_channel, category_modes=modes,
                        quiet_hours=args.quiet, timezone=args.tz, updated_at=now_ms(),
                        fallbacks=fallbacks)
    client = _producer_client()
    client.set_preferences(prefs)
    client.flush()
    print(json.dumps(prefs.to_avro()))
    return 0


def cmd_prefs_reset(args: argparse.Namespace) -> int:
    client = _producer_client()
    client.reset_preferences(args.user)
    client.flush()
    print(f"preferences of {args.user} reset to defaults")
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    shown = 0
    settings = ClientSettings.from_env()
    kafka_access("ops", settings.bootstrap_servers).verify()
    for delivery in tail_deliveries(settings, args.channel,
                                    from_beginning=args.from_beginning, timeout_s=args.timeout):
        if args.user and delivery.user_id != args.user:
            continue
        row = delivery.to_avro()
        if not args.full:
            row = {k: row[k] for k in ("delivery_id", "user_id", "kind", "reason", "category",
                                       "title", "body", "item_count", "event_ids", "fallback_of")
                   if k != "fallback_of" or row[k] is not None}
        print(json.dumps(row), flush=True)
        shown += 1
        if args.max and shown >= args.max:
            break
    return 0


def run_guarded(handler):  # noqa: ANN001, ANN202 - wraps the handlers below
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (InvalidRecord, ValueError, KafkaAccessError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return run


def add_parser(sub: argparse._SubParsersAction) -> None:
    send = sub.add_parser("send", help="send a notification event",
                          description="Send a NotificationEvent (Avro) to notifications.events.")
    send.add_argument("--user", required=True, help="recipient user id (the partition key)")
    send.add_argument("--category", required=True, help="e.g. social.like, billing, security")
    send.add_argument("--title")
    send.add_argument("--body")
    send.add_argument("--template", help="template name instead of --title/--body")
    send.add_argument("--data", type=_pair, action="append", default=[], metavar="KEY=VALUE",
                      help="template data; repeatable")
    send.add_argument("--priority", default="NORMAL", choices=[p.value for p in Priority])
    send.add_argument("--channel", action="append", metavar="CHANNEL",
                      help="restrict to this channel (email, sms, push, in_app); repeatable")
    send.add_argument("--digest-key", help="events sharing it may be folded into one digest")
    send.add_argument("--event-id", help="idempotency key (default: a new UUID)")
    send.add_argument("--expires-in", type=float, metavar="SECONDS", help="drop if not sent by then")
    send.add_argument("--count", type=int, default=1, help="send this many events (a burst)")
    send.set_defaults(handler=run_guarded(cmd_send))

    prefs = sub.add_parser("prefs", help="set or reset a user's preferences")
    actions = prefs.add_subparsers(dest="action", required=True)
    put = actions.add_parser("set", help="publish a full preferences snapshot for a user",
                             description="Publish a UserPreferences snapshot (replaces the old one).")
    put.add_argument("--user", required=True)
    put.add_argument("--address", type=_pair, action="append", default=[], metavar="CHANNEL=ADDRESS",
                     help="enable a channel with its address (email=a@b.c, sms=+4912345, "
                          "push=<token>, in_app=)")
    put.add_argument("--disable", action="append", default=[], metavar="CHANNEL")
    put.add_argument("--throttle", type=_pair, action="append", default=[], metavar="CHANNEL=N",
                     help="at most N deliveries per throttle window on that channel")
    put.add_argument("--mute", action="append", default=[], metavar="CATEGORY", help="on all channels")
    put.add_argument("--mute-on", type=_pair, action="append", default=[], metavar="CHANNEL=CATEGORY")
    put.add_argument("--digest", action="append", default=[], metavar="CATEGORY",
                     help="deliver this category as digests")
    put.add_argument("--immediate", action="append", default=[], metavar="CATEGORY",
                     help="deliver this category at once even if digested by default")
    put.add_argument("--quiet", type=_quiet, metavar="HH:MM-HH:MM", help="quiet hours, local time")
    put.add_argument("--tz", default="UTC", help="IANA time zone, e.g. Europe/Berlin")
    put.add_argument("--fallback", type=_fallback, action="append", default=[],
                     metavar="CATEGORY=CHANNEL>CHANNEL[>...][/SECONDS]",
                     help="channels to try in turn when a delivery bounces, fails or is not confirmed "
                          "within SECONDS (default: NOTIPIPE_FALLBACK_TIMEOUT_S); overrides "
                          "NOTIPIPE_FALLBACKS for the category")
    put.add_argument("--no-fallback", action="append", default=[], metavar="CATEGORY",
                     help="no fallback for this category, whatever NOTIPIPE_FALLBACKS says")
    put.set_defaults(handler=run_guarded(cmd_prefs_set))
    reset = actions.add_parser("reset", help="tombstone: back to the configured defaults")
    reset.add_argument("--user", required=True)
    reset.set_defaults(handler=run_guarded(cmd_prefs_reset))

    tail = sub.add_parser("tail", help="print a channel's deliveries as they arrive (decoded)")
    tail.add_argument("channel", choices=[c.key for c in Channel])
    tail.add_argument("--from-beginning", action="store_true")
    tail.add_argument("--user", help="only this user's deliveries")
    tail.add_argument("--max", type=int, help="stop after this many")
    tail.add_argument("--timeout", type=float, help="stop after this many idle seconds")
    tail.add_argument("--full", action="store_true", help="every field, not a summary")
    tail.set_defaults(handler=run_guarded(cmd_tail))
