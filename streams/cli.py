"""`notipipe`: one command line for the pipeline, its local stack and its tools.

Only the module of the command given is imported (`notipipe send` does not load the benchmark or
the stack); `notipipe --help` loads them all to list them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# command -> the module whose add_parser(sub) defines it
COMMANDS = {
    "stack": "stack.cli",
    "connectors": "stack.connectors_cli",
    "worker": "streams.worker.run",
    "send": "streams.client.cli",
    "prefs": "streams.client.cli",
    "tail": "streams.client.cli",
    "demo": "streams.client.demo",
    "settings": "streams.settings_cli",
    "inbox": "inbox.cli",
    "bench": "bench.cli",
    "chaos": "chaos.cli",
    "dashboard": "monitoring.dashboard",
    "lag": "monitoring.lag_cli",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="notipipe",
        description="Real-time notification pipeline on Kafka, Faust and Kafka Connect.",
        epilog="Every setting comes from NOTIPIPE_* environment variables: `notipipe settings` "
               "shows them, docs/configuration.md describes them.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = [COMMANDS[command]] if command in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for module in modules:
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and not argv[0].startswith("-") else None
    args = build_parser(command).parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
