"""`notipipe`: one command line for the pipeline, its local stack and its tools."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bench import cli as bench_cli
from monitoring import cli as monitoring_cli
from stack import cli as stack_cli
from stack import connectors_cli
from streams import client_cli, demo, worker


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="notipipe",
        description="Real-time notification pipeline on Kafka, Faust and Kafka Connect.",
        epilog="Every setting comes from NOTIPIPE_* environment variables; see README.md.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    stack_cli.add_parser(sub)
    connectors_cli.add_parser(sub)
    worker.add_parser(sub)
    client_cli.add_parsers(sub)
    demo.add_parser(sub)
    bench_cli.add_parser(sub)
    monitoring_cli.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
