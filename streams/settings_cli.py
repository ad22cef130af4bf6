"""`notipipe settings`: every NOTIPIPE_* variable, its value in effect and what it means."""

from __future__ import annotations

import argparse
import os
import sys

from streams.core.config import ConfigError, markdown, variables


def sections() -> list[tuple[str, str, type]]:
    """(title, who reads them, settings class), in the order the docs list them."""
    from chaos.settings import ChaosSettings
    from stack.settings import StackSettings
    from streams.client.sdk import ClientSettings
    from streams.core.settings import RouterSettings
    from streams.worker.settings import WorkerSettings

    return [
        ("Worker process", "`notipipe worker`", WorkerSettings),
        ("Routing rules", "`notipipe worker` (and the benchmark's peers)", RouterSettings),
        ("Producers", "the SDK and the `send`, `prefs`, `tail`, `demo` commands", ClientSettings),
        ("Local stack", "`notipipe stack` and the tests", StackSettings),
        ("Chaos runs", "`notipipe chaos`", ChaosSettings),
    ]


def run(args: argparse.Namespace) -> int:
    if args.markdown:
        print(markdown(sections()), end="")
        return 0
    for title, _, cls in sections():
        print(f"{title}:")
        try:
            cls.from_env()
        except ConfigError as exc:
            print(f"  error: {exc}", file=sys.stderr)
        for var in variables(cls):
            value = os.environ.get(var.name)
            shown = "(default)" if value is None else ("***" if "PASSWORD" in var.name else value)
            print(f"  {var.name:<34} {shown:<20} {var.doc}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("settings", help="show every NOTIPIPE_* setting and its value in effect",
                            description=__doc__)
    parser.add_argument("--markdown", action="store_true",
                        help="print the configuration reference (docs/configuration.md)")
    parser.set_defaults(handler=run)
