"""`notipipe worker`: run one Faust worker process of the router."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys

from streams.connection.kafka import KafkaAccessError, KafkaConfigError, kafka_access
from streams.core.clock import Clock, SystemClock
from streams.core.config import ConfigError
from streams.core.settings import RouterSettings
from streams.worker.settings import WorkerSettings

# These loggers create several DEBUG records per event even when the level is higher elsewhere:
# pinning them to WARNING is a measured speed-up and hides nothing useful.
_CHATTY_LOGGERS = ("faust.topics", "aiokafka", "aiokafka.producer", "aiokafka.consumer",
                   "faust.transport", "faust.tables")


def run(args: argparse.Namespace) -> int:
    import faust
    import uvloop

    from streams.faust_ext.internals import IncompatibleFramework, verify_installed
    from streams.worker.app import Worker
    from streams.worker.clock_file import FileClock
    from streams.worker.topology import TopologyError, discover_topology

    try:
        verify_installed()
        settings = WorkerSettings.from_env()
        rules = RouterSettings.from_env()
        kafka = kafka_access("worker", settings.bootstrap_servers)
        kafka.verify()  # a refusal says why, at once
        topology = discover_topology(kafka.confluent_config(), settings.topics, settings.app_id)
    except (ConfigError, KafkaConfigError, KafkaAccessError, TopologyError, IncompatibleFramework) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # uvloop: a faster event loop for Faust's many small callbacks per event. Set before the
    # Faust app exists, or the app keeps the default loop it created.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.set_event_loop(asyncio.new_event_loop())
    # The worker allocates several short-lived objects per event and holds many long-lived
    # ones (Faust, aiokafka, caches): collect the young generation less often.
    gc.set_threshold(50_000, 20, 20)
    clock: Clock = FileClock(settings.clock_file) if settings.clock_file else SystemClock()
    worker = Worker(settings, rules, clock, topology, kafka)
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    faust.Worker(worker.app, loglevel=settings.log_level.upper(), quiet=True).execute_from_commandline()
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "worker", help="run a router worker process (Faust)",
        description="Run one worker of the router: it joins events with preferences, applies the "
                    "rules and writes deliveries. Start more processes to scale out by partitions; "
                    "give each its own NOTIPIPE_WEB_PORT. Settings: NOTIPIPE_* variables, see "
                    "docs/configuration.md or `notipipe settings`.")
    parser.set_defaults(handler=run)
