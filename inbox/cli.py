"""`notipipe inbox serve` runs the inbox service; `notipipe inbox token` issues a user token."""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import time

from aiohttp import web

from inbox.secret_files import TOKEN_SECRET, SecretMissing, read_secrets
from inbox.services import StartupError
from inbox.settings import InboxSettings
from inbox.tokens import issue
from streams.core.config import ConfigError


def cmd_serve(_: argparse.Namespace) -> int:
    from inbox.app import create_app
    from inbox.services import build

    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = InboxSettings.from_env()
    app = create_app(build(settings))
    # The port is taken before any client connection is opened: the service's own connections to
    # Kafka and PostgreSQL could otherwise be handed it as their local port first.
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((settings.host, settings.port))
    except OSError as exc:
        listener.close()
        raise ValueError(f"cannot listen on {settings.host}:{settings.port} ({exc.strerror}): "
                         "choose another NOTIPIPE_INBOX_PORT") from None
    listener.listen(128)
    # No access log: feed URLs may carry a token.
    web.run_app(app, sock=listener, access_log=None, print=None, shutdown_timeout=10)
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    settings = InboxSettings.from_env()
    secret = read_secrets(settings.secrets_directory(), TOKEN_SECRET)[0]
    ttl = args.ttl if args.ttl is not None else settings.token_ttl_s
    print(issue(secret, args.user, int(time.time()), ttl))
    return 0


def _guarded(handler):  # noqa: ANN001, ANN202 - wraps the handlers below
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (ConfigError, SecretMissing, StartupError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return run


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "inbox", help="the inbox service (API, live feed, receipt webhook) and its user tokens",
        description="The in-app inbox for applications: list, count and mark a user's "
                    "notifications, a live feed (Server-Sent Events), and the webhook gateways "
                    "report delivery receipts to. Settings: NOTIPIPE_INBOX_* (docs/configuration.md); "
                    "the API: docs/inbox.md and /openapi.json.")
    actions = parser.add_subparsers(dest="action", required=True)
    serve = actions.add_parser("serve", help="run one instance of the service (several may run "
                                             "side by side, each on its own port)")
    serve.set_defaults(handler=_guarded(cmd_serve))
    token = actions.add_parser(
        "token", help="print a user token (what an app's backend gives a signed-in user)",
        description="Print a token (JWT, HS256) for one user, signed with the service's secret "
                    "(<NOTIPIPE_INBOX_SECRETS_DIR>/inbox-token). The browser sends it as "
                    "`Authorization: Bearer <token>`; the demo page takes it as /#token=<token>.")
    token.add_argument("--user", required=True, help="the user id the token is for")
    token.add_argument("--ttl", type=int, metavar="SECONDS",
                       help="lifetime (default: NOTIPIPE_INBOX_TOKEN_TTL_S, 3600)")
    token.set_defaults(handler=_guarded(cmd_token))
