"""`notipipe chaos SCENARIO...`: faults and changes under load on the local stack, each checked by
the verifier: nothing lost, nothing delivered twice, order kept per user, nothing dead-lettered,
lags drained. Exits 1 if any scenario fails."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

from chaos.brokers import TooFewBrokers
from chaos.ledger import LedgerSpec
from chaos.pipeline import ChaosPipeline
from chaos.report import as_json, lines, summary
from chaos.scenarios import SCENARIOS
from chaos.settings import ChaosSettings
from chaos.verifier import Outcome, Verifier
from chaos.workers import port_allocator
from stack.settings import ConfigError, StackSettings


def run(args: argparse.Namespace) -> int:
    if args.list:
        for scenario in SCENARIOS.values():
            print(f"{scenario.name:<24} {scenario.title}")
            if scenario.brokers > 1:
                print(f"{'':<24}   needs a stack of {scenario.brokers} brokers "
                      f"(NOTIPIPE_BROKERS={scenario.brokers})")
            for variant, t in (("short", scenario.short), ("long", scenario.long)):
                print(f"{'':<24}   {variant}: {t.warmup_s:g}s load, fault {t.fault_s:g}s, "
                      f"{t.after_s:g}s after")
        return 0
    names = list(SCENARIOS) if "all" in args.scenarios else args.scenarios
    unknown = [n for n in names if n not in SCENARIOS]
    if not names or unknown:
        what = f"no scenario {', '.join(unknown)}" if unknown else "name scenarios to run, or all"
        print(f"error: {what} (`notipipe chaos --list` shows them)", file=sys.stderr)
        return 2
    try:
        stack, settings = StackSettings.from_env(), ChaosSettings.from_env()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    work_dir = Path(tempfile.mkdtemp(prefix="notipipe-chaos-"))
    run_id = uuid.uuid4().hex[:6]
    pipeline = ChaosPipeline(stack, run_id, work_dir, port_allocator(settings.web_port),
                             workers=args.workers, partitions=args.partitions)
    try:
        names = _runnable(names, pipeline, explicit="all" not in args.scenarios)
    except TooFewBrokers as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    outcomes: list[Outcome] = []
    started = time.monotonic()
    print(f"chaos run {run_id}: pipeline {pipeline.prefix} (database schema {pipeline.db_schema}), "
          f"{args.workers} workers, logs in {work_dir}", flush=True)
    try:
        pipeline.setup()
        verifier = Verifier(pipeline)
        rate = args.rate
        if rate is None:
            measured, outcome = verifier.measure_max_rate(args.burst, LedgerSpec(users=args.users,
                                                                                 quiet=False))
            outcomes.append(outcome)
            _show(outcome, "the maximum: a burst as fast as the producer sends, until every lag "
                           "is zero", args)
            rate = measured * args.share
            print(f"measured maximum {measured:,.0f} events/s; the load runs at {args.share:g} of "
                  f"it: {rate:,.0f}/s", flush=True)
        for name in names:
            scenario = SCENARIOS[name]
            outcome = verifier.run(scenario, rate, args.short, users=args.users)
            outcomes.append(outcome)
            timing = scenario.short if args.short else scenario.long
            _show(outcome, scenario.title, args, scenario.drain_bound_s(timing))
    finally:
        if args.keep:
            print(f"kept: pipeline {pipeline.prefix}, schema {pipeline.db_schema}, workers running")
        else:
            pipeline.teardown()
    print("\n".join(["", *summary(outcomes),
                     f"{len(outcomes)} runs in {time.monotonic() - started:.0f}s"]))
    if args.json:
        Path(args.json).write_text(json.dumps([as_json(o) for o in outcomes], indent=2) + "\n")
    return 0 if all(o.ok for o in outcomes) else 1


def _runnable(names: list[str], pipeline: ChaosPipeline, explicit: bool) -> list[str]:
    """The scenarios this stack can run: the broker faults need three brokers. Named on the
    command line they are refused on a smaller cluster; as part of `all` they are skipped."""
    if all(SCENARIOS[n].brokers <= 1 for n in names):
        return names
    try:
        pipeline.brokers.require()
        return names
    except TooFewBrokers as exc:
        if explicit:
            raise
        skipped = [n for n in names if SCENARIOS[n].brokers > 1]
        print(f"skipping {', '.join(skipped)}: {exc}", flush=True)
        return [n for n in names if n not in skipped]


def _show(outcome: Outcome, title: str, args: argparse.Namespace, bound: float | None = None) -> None:
    print("\n".join(lines(outcome, title, bound)), flush=True)


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "chaos", help="run faults and changes under load, checked by the verifier",
        description=__doc__ + " Needs the local stack (`notipipe stack up`); the run gets a "
        "pipeline of its own (topics, database schema, connectors, workers), removed afterwards. "
        "It stops and restarts the stack's Connect, PostgreSQL and registry: do not run it "
        "against a stack others use.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                        help=f"scenarios to run in order ({', '.join(SCENARIOS)}), or all")
    parser.add_argument("--list", action="store_true", help="list the scenarios and their timings")
    parser.add_argument("--short", action="store_true",
                        help="the short variants (outages of seconds, as the test suite runs them)")
    parser.add_argument("--rate", type=float, metavar="EVENTS_PER_S",
                        help="a fixed rate (default: --share of the maximum measured first)")
    parser.add_argument("--share", type=float, default=0.5,
                        help="the load as a share of the measured maximum (default: %(default)s)")
    parser.add_argument("--burst", type=int, default=5000,
                        help="events of the burst that measures the maximum (default: %(default)s)")
    parser.add_argument("--users", type=int, default=200, help="users per scenario (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default: %(default)s)")
    parser.add_argument("--partitions", type=int, default=4,
                        help="partitions of the run's topics (default: %(default)s)")
    parser.add_argument("--json", metavar="PATH", help="also write the outcomes as JSON")
    parser.add_argument("--keep", action="store_true",
                        help="leave the run's pipeline and workers in place (to look around)")
    parser.set_defaults(handler=run)
