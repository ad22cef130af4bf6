"""`notipipe bench`: the throughput/latency benchmark of the worker and its peers on the local stack."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from stack.settings import PROJECT_ROOT, ConfigError, StackSettings

RESULTS = PROJECT_ROOT / "bench" / "results"
ALL_SYSTEMS = ("notipipe", "confluent-loop", "quix", "naive-faust")
FALLBACK_SYSTEM = "notipipe-fallback"


def _csv(kind):  # noqa: ANN001, ANN202
    def parse(text: str) -> list:
        try:
            return [kind(p.strip()) for p in text.split(",") if p.strip()]
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "bench",
        help="benchmark the worker against its peers on the local stack",
        description="Throughput and latency of the router, measured from the topics, next to three "
        "peers running the same rules on the same broker: a plain confluent-kafka loop, "
        "Quix Streams and a naive Faust agent. Needs the local stack (`notipipe stack up`). "
        "Prints tables, writes JSON and a PNG plot to bench/results/. --quick takes a few "
        "minutes; the full run takes much longer.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small run: 20K-event burst, short phases, 2 workers only for notipipe",
    )
    parser.add_argument(
        "--systems",
        type=_csv(str),
        default=list(ALL_SYSTEMS),
        help=f"comma-separated subset of {','.join(ALL_SYSTEMS)} (default: all)",
    )
    parser.add_argument(
        "--workers", type=_csv(int), default=None, help="worker process counts to run (default: 1,2)"
    )
    parser.add_argument(
        "--fallback",
        action="store_true",
        help="also run the notipipe worker with fallback chains on (bench/systems.py BENCH_FALLBACKS: "
        "40 %% of the events, 5 s timeouts), right after it without: ev/CPU-s of both in one run",
    )
    parser.add_argument(
        "--receipt-share",
        type=float,
        default=0.5,
        help="share of the e-mail, SMS and push deliveries the benchmark answers with a receipt on "
        "the receipts topic, one in ten BOUNCED (bench/receipts.py; default: 0.5, 0: none)",
    )
    parser.add_argument(
        "--peers-2w",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also run the peers with 2 workers (default: only in the full run)",
    )
    parser.add_argument(
        "--events",
        type=int,
        default=None,
        help="events in the max-throughput burst (default: quick 20000, full 500000)",
    )
    parser.add_argument(
        "--max-runs",
        type=int,
        default=None,
        help="max-throughput bursts per system; the tables show the median burst and the range "
        "(default: quick 3, full 1; a single burst's rate moves by up to a third on a shared VM)",
    )
    parser.add_argument(
        "--users", type=int, default=None, help="distinct users (default: quick 5000, full 100000)"
    )
    parser.add_argument(
        "--partitions", type=int, default=4, help="partitions of every bench topic (default: 4)"
    )
    parser.add_argument(
        "--rates",
        type=_csv(float),
        default=[0.25, 0.5, 0.75, 1.0],
        help="offered rates as fractions of the measured maximum (default: 0.25,0.5,0.75,1)",
    )
    parser.add_argument(
        "--rate-base",
        type=float,
        default=None,
        metavar="EVENTS_PER_S",
        help="offer --rates (and the spike and --soak, which take 25 %% and 50 %% of the maximum) "
        "as fractions of this rate instead of each system's measured maximum (to compare builds "
        "or settings at the same offered load; default: each system's own maximum)",
    )
    parser.add_argument(
        "--rate-seconds",
        type=float,
        default=None,
        help="seconds of each fixed-rate phase (default: quick 4, full 20)",
    )
    parser.add_argument(
        "--spike-seconds",
        type=float,
        default=None,
        help="seconds of the 10x spike (default: quick 2, full 5)",
    )
    parser.add_argument(
        "--category-mix",
        default=None,
        metavar="CAT=W,...",
        help="category weights, e.g. social.like=0.3,message.new=0.7 (default: a realistic mix)",
    )
    parser.add_argument(
        "--priority-mix",
        default=None,
        metavar="PRIO=W,...",
        help="LOW/NORMAL/HIGH/CRITICAL weights (default: LOW=.2,NORMAL=.6,HIGH=.15,CRITICAL=.05)",
    )
    parser.add_argument(
        "--digest-share",
        type=float,
        default=None,
        help="share of events in digest categories (default: from the mix, 0.40)",
    )
    parser.add_argument(
        "--duplicate-share", type=float, default=0.02, help="share of repeated event ids (default: 0.02)"
    )
    parser.add_argument("--seed", type=int, default=42, help="seed of the workload generator (default: 42)")
    parser.add_argument(
        "--soak",
        type=int,
        default=0,
        metavar="EVENTS",
        help="after the sweep, run notipipe (1 worker) at 50 %% of its max for this many "
        "events and report its RSS over time (e.g. 5000000; default: 0, no soak)",
    )
    parser.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="py-spy the notipipe worker (1 worker) during an extra burst (default: on)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS,
        help="where JSON, PNG and the profile go (default: bench/results)",
    )
    parser.set_defaults(handler=run)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(args: argparse.Namespace) -> int:
    from .report import calibration_us, describe_machine, machine, plot, profile_text, tables
    from .runner import BenchConfig, dump_json, run_all
    from .systems import SYSTEMS, ensure_quix_venv
    from .workload import DEFAULT_CATEGORY_MIX, DEFAULT_PRIORITY_MIX, WorkloadSpec, parse_mix

    try:
        stack = StackSettings.from_env()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    unknown = [s for s in args.systems if s not in SYSTEMS or s == FALLBACK_SYSTEM]
    if unknown:
        print(f"error: unknown systems {unknown}; choose from {', '.join(ALL_SYSTEMS)}", file=sys.stderr)
        return 2
    if args.rate_base is not None and args.rate_base <= 0:
        print(f"error: --rate-base must be a positive rate, got {args.rate_base}", file=sys.stderr)
        return 2
    if not 0 <= args.receipt_share <= 1:
        print(f"error: --receipt-share must be between 0 and 1, got {args.receipt_share}", file=sys.stderr)
        return 2
    if args.fallback and "notipipe" not in args.systems:
        print("error: --fallback compares with the notipipe worker: keep notipipe in --systems",
              file=sys.stderr)
        return 2
    if args.max_runs is not None and args.max_runs < 1:
        print(f"error: --max-runs must be at least 1, got {args.max_runs}", file=sys.stderr)
        return 2
    quick = args.quick
    try:
        spec = WorkloadSpec(
            users=args.users or (5_000 if quick else 100_000),
            category_mix=parse_mix(args.category_mix) if args.category_mix else dict(DEFAULT_CATEGORY_MIX),
            priority_mix=(
                parse_mix(args.priority_mix, {"LOW", "NORMAL", "HIGH", "CRITICAL"})
                if args.priority_mix
                else dict(DEFAULT_PRIORITY_MIX)
            ),
            digest_share=args.digest_share,
            duplicate_share=args.duplicate_share,
            seed=args.seed,
        )
        spec.effective_category_mix()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not _stack_reachable(stack):
        print(
            f"error: Kafka at {stack.bootstrap_servers} is not reachable: start the stack with "
            "`notipipe stack up`",
            file=sys.stderr,
        )
        return 2
    if "quix" in args.systems:
        try:
            ensure_quix_venv()
        except Exception as exc:  # noqa: BLE001
            print(f"warning: cannot set up Quix Streams ({exc}); skipping it", file=sys.stderr)
            args.systems = [s for s in args.systems if s != "quix"]

    workers = args.workers or [1, 2]
    peers_2w = args.peers_2w if args.peers_2w is not None else not quick
    runs = []
    for w in workers:
        for name in args.systems:
            if w > 1 and name != "notipipe" and not peers_2w:
                continue
            runs.append((name, w))
            if name == "notipipe" and args.fallback:
                runs.append((FALLBACK_SYSTEM, w))
    out_dir: Path = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = BenchConfig(
        quick=quick,
        events=args.events or (20_000 if quick else 500_000),
        max_runs=args.max_runs or (3 if quick else 1),
        rate_base=args.rate_base,
        workload=spec,
        partitions=args.partitions,
        runs=runs,
        phases_workers=[1] if quick else workers,
        rate_fractions=args.rates,
        rate_phase_s=args.rate_seconds or (4.0 if quick else 20.0),
        spike_base_fraction=0.25,
        spike_factor=10.0,
        spike_pre_s=2.0 if quick else 10.0,
        spike_s=args.spike_seconds or (2.0 if quick else 5.0),
        spike_post_s=6.0 if quick else 30.0,
        warmup_events=1000 if quick else 5000,
        soak_events=args.soak,
        profile=args.profile,
        router_env={
            "NOTIPIPE_DIGEST_WINDOW_S": "2",
            "NOTIPIPE_THROTTLE_WINDOW_S": "10",
            "NOTIPIPE_TICK_INTERVAL_S": "1.0",
        },
        receipt_share=args.receipt_share,
        out_dir=out_dir,
        log=lambda s: print(s, flush=True),
    )

    m = machine(stack)
    print(describe_machine(m), flush=True)
    started = time.monotonic()
    # A terminated benchmark still stops its workers and deletes its topics (the teardown runs
    # in `finally` blocks; Python's default SIGTERM exits without them).
    signal.signal(signal.SIGTERM, _interrupt)
    results, workload, run_id, core = run_all(cfg, stack)
    elapsed = time.monotonic() - started
    m["loadavg_at_end"] = [round(x, 2) for x in __import__("os").getloadavg()]
    m["calibration_us_at_end"] = calibration_us()

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    mode = "quick" if quick else "full"
    profile = next((r.profile for r in results if r.profile), None)
    text = tables(results, core)
    print()
    print(describe_machine(m))
    print(
        f"load average at end: {m['loadavg_at_end']}; speed check at end: {m['calibration_us_at_end']} us; "
        f"run took {elapsed / 60:.1f} min\n"
    )
    print(text)
    print(profile_text(profile))
    json_path = out_dir / f"bench-{mode}-{stamp}.json"
    dump_json(
        json_path,
        {
            "mode": mode,
            "run_id": run_id,
            "started_utc": stamp,
            "elapsed_s": elapsed,
            "machine": m,
            "config": {k: v for k, v in vars(cfg).items() if k not in ("log",)},
            "workload": {
                "users": spec.users,
                "category_mix": spec.effective_category_mix(),
                "priority_mix": spec.priority_mix,
                "duplicate_share": spec.duplicate_share,
                "max_phase_expected_delivered_events": len(workload.expected_max),
            },
            "core": core,
            "runs": results,
            "profile": profile,
            "table": text,
        },
    )
    png = plot(
        results,
        out_dir / f"bench-{mode}-{stamp}.png",
        f"notipipe bench ({mode}) - {m['cpu']}, {m['cores']} cores - {stamp}",
    )
    print(f"\nwrote {json_path}" + (f" and {png}" if png else " (matplotlib missing: no plot)"))
    return 0 if all(r.error is None for r in results) else 1


def _stack_reachable(stack: StackSettings) -> bool:
    from confluent_kafka.admin import AdminClient

    from .kafka_io import kafka_config

    try:
        AdminClient(kafka_config(stack)).list_topics(timeout=5)
        return True
    except Exception:  # noqa: BLE001
        return False
