"""`python -m bench ...` runs `notipipe bench ...` (handy before the CLI line is added)."""

import argparse
import sys

from bench import cli

parser = argparse.ArgumentParser(prog="python -m bench")
sub = parser.add_subparsers(dest="command", required=True)
cli.add_parser(sub)
args = parser.parse_args(["bench", *sys.argv[1:]])
sys.exit(args.handler(args))
