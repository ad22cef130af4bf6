"""`notipipe worker`: run one Faust worker process of the router."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys

import faust
import uvloop

from .clock import Clock, SystemClock
from .clock_control import FileClock
from .connection.kafka import KafkaAccessError, KafkaConfigError, kafka_access
from .settings import ConfigError, RouterSettings
from .worker_settings import WorkerSettings

# These loggers create several DEBUG records per event even when the level is higher elsewhere:
# pinning them to WARNING is a measured speed-up (see DESIGN.md) and hides nothing useful.
_CHATTY_LOGGERS = ("faust.topics", "aiokafka", "aiokafka.producer", "aiokafka.consumer",
                   "faust.transport", "faust.tables")


def run(args: argparse.Namespace) -> int:
    from .app import Pipeline, TopologyError

    try:
        ws = WorkerSettings.from_env()
        rs = RouterSettings.from_env()
        kafka_access("worker", ws.bootstrap_servers).verify()  # a refusal says why, at once
    except (ConfigError, KafkaConfigError, KafkaAccessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ws.data_dir.mkdir(parents=True, exist_ok=True)
    # uvloop: a faster event loop for Faust's many small callbacks per event. Set before the
    # Faust app exists, or the app keeps the default loop it created.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.set_event_loop(asyncio.new_event_loop())
    # The worker allocates several short-lived objects per event and holds many long-lived
    # ones (Faust, aiokafka, caches): collect the young generation less often.
    gc.set_threshold(50_000, 20, 20)
    clock: Clock = FileClock(ws.clock_file) if ws.clock_file else SystemClock()
    try:
        pipeline = Pipeline(ws, rs, clock)
    except TopologyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    worker = faust.Worker(pipeline.app, loglevel=ws.log_level.upper(), quiet=True)
    worker.execute_from_commandline()
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "worker", help="run a router worker process (Faust)",
        description="Run one worker of the router: it joins events with preferences, applies the "
                    "rules and writes deliveries. Start more processes to scale out by partitions; "
                    "give each its own NOTIPIPE_WEB_PORT. Settings: NOTIPIPE_* variables, see "
                    "streams/worker_settings.py and streams/settings.py.")
    parser.set_defaults(handler=run)
