"""`notipipe settings`: every NOTIPIPE_* variable, its value in effect and what it means."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from streams.connection.variables import CREDENTIALS
from streams.core.config import ConfigError, markdown, variables


def sections() -> list[tuple[str, str, Any]]:
    """(title, who reads them, settings class), in the order the docs list them."""
    from chaos.settings import ChaosSettings
    from inbox.settings import InboxSettings
    from monitoring.settings import MonitoringSettings
    from stack.settings import StackSettings
    from streams.client.sdk import ClientSettings
    from streams.core.settings import RouterSettings
    from streams.worker.settings import WorkerSettings

    return [
        ("Worker process", "`notipipe worker`", WorkerSettings),
        ("Routing rules", "`notipipe worker` (and the benchmark's peers)", RouterSettings),
        ("Producers", "the SDK and the `send`, `prefs`, `tail`, `demo` commands", ClientSettings),
        ("Inbox service", "`notipipe inbox`", InboxSettings),
        ("Local stack", "`notipipe stack` and the tests", StackSettings),
        ("Credentials", "every client, through `streams/connection/` (on the local stack each "
         "defaults to a secret `stack up` generated in `.cache/secrets/`; see docs/security.md)",
         CREDENTIALS),
        ("Monitoring", "the stack's Prometheus, Alertmanager, lag exporter and dashboard, and "
         "`notipipe lag`", MonitoringSettings),
        ("Chaos runs", "`notipipe chaos`", ChaosSettings),
    ]


def run(args: argparse.Namespace) -> int:
    if args.markdown:
        print(markdown(sections()), end="")
        return 0
    for title, _, declared in sections():
        print(f"{title}:")
        if isinstance(declared, type):
            try:
                declared.from_env()
            except ConfigError as exc:
                print(f"  error: {exc}", file=sys.stderr)
        for var in (variables(declared) if isinstance(declared, type) else declared):
            value = os.environ.get(var.name)
            secret = "PASSWORD" in var.name or var.name.endswith("_DSN")  # a DSN may hold a password
            shown = "(default)" if value is None else ("***" if secret else value)
            print(f"  {var.name:<34} {shown:<20} {var.doc}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("settings", help="show every NOTIPIPE_* setting and its value in effect",
                            description=__doc__)
    parser.add_argument("--markdown", action="store_true",
                        help="print the configuration reference (docs/configuration.md)")
    parser.set_defaults(handler=run)
