"""The monitoring commands of `notipipe`: `dashboard` and `lag`."""

from __future__ import annotations

import argparse


def add_parsers(sub: argparse._SubParsersAction) -> None:
    from monitoring import dashboard, lag_cli

    dashboard.add_parser(sub)
    lag_cli.add_parser(sub)
