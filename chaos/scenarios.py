"""The faults and changes, each run under the verifier's load (verifier.py). A scenario's function
injects its fault, waits, heals it, and notes what happened; the verifier checks the rest.

Each has a short variant (the pytest suite: outages of seconds) and a long one (`notipipe chaos`:
the outages of the brief, 30 s; a 60 s spike). The broker faults (the partition leader SIGKILLed
and restarted after 20 s, a rolling restart of the brokers) need a stack of three brokers
(NOTIPIPE_BROKERS=3).
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request

import psycopg
from psycopg import sql

from chaos.verdict import Observed
from chaos.verifier import DRAIN_BOUND_S, Context, Scenario, Timing
from chaos.workers import WorkerProcess, wait_until
from stack.components import Component, Connect, Postgres, Registry
from stack.connectors_setup import apply_connector
from stack.migrations import apply_migrations
from stack.process import pid_alive
from stack.schemas_setup import register_schemas

EVENT_VERSION = "NOTIPIPE_EVENT_SCHEMA_VERSION"


# -- helpers ---------------------------------------------------------------------------------------
def _timed(what: str, ctx: Context, action) -> float:  # noqa: ANN001 - any callable
    started = time.monotonic()
    action()
    took = time.monotonic() - started
    ctx.note(f"{what} in {took:.1f}s")
    return took


def restart_worker(ctx: Context, worker: WorkerProcess, extra_env: dict[str, str]) -> None:
    """The deployment path for one worker: SIGTERM, wait for its exit, start it with the new
    settings, wait until the group is whole again."""
    took = worker.stop()
    ctx.note(f"{worker.name} stopped (SIGTERM) in {took:.1f}s")
    changed = ", ".join(f"{k}={v}" for k, v in extra_env.items())
    _timed(f"{worker.name} back with {changed}; every partition owned again", ctx,
           lambda: (worker.start(extra_env), ctx.pipeline.wait_group_stable()))


def roll_workers(ctx: Context, extra_env: dict[str, str]) -> None:
    for worker in ctx.pipeline.workers:
        restart_worker(ctx, worker, extra_env)


def stop_component(ctx: Context, component: Component, sig: signal.Signals) -> None:
    pid = component.pid()
    assert pid is not None, f"{component.name} is not running"
    os.killpg(pid, sig)
    wait_until(lambda: not pid_alive(pid), 60, f"{component.name} to exit after {sig.name}")
    ctx.note(f"{component.name} stopped with {sig.name}")


def register_event_v2(ctx: Context) -> None:
    """The deployment step of a new contract version: register it (idempotent)."""
    ids = register_schemas(ctx.pipeline.scoped)
    ctx.note(f"NotificationEvent v2 registered (schema id {ids[f'{ctx.pipeline.topics.events}-value']})")


# -- the scenarios ----------------------------------------------------------------------------------
def leader_kill(ctx: Context) -> None:
    """SIGKILL the broker leading the events topic's first partition; start it after the fault's
    time; wait until it is back in every partition's in-sync replicas and leads its own again."""
    brokers, events = ctx.pipeline.brokers, ctx.pipeline.topics.events
    victim = brokers.leader(events, 0)
    killed_at = time.monotonic()
    brokers.kill(victim)
    ctx.note(f"broker {victim} (leader of {events}/0) SIGKILLed")
    _timed(f"{events}/0 led by another broker", ctx,
           lambda: wait_until(lambda: brokers.leader(events, 0) not in (victim, -1), 60,
                              f"{events}/0 to get another leader"))
    ctx.pipeline.wait(max(0.0, ctx.timing.fault_s - (time.monotonic() - killed_at)))
    _timed(f"broker {victim} restarted and in sync with every partition", ctx,
           lambda: (brokers.start(victim), brokers.wait_in_sync(f"after restarting broker {victim}")))
    brokers.elect_preferred_leaders()
    ctx.note(f"preferred leaders elected: {events}/0 led by broker {brokers.leader(events, 0)}")


def broker_roll(ctx: Context) -> None:
    """Each broker in turn: SIGTERM (a controlled shutdown), the load on for the fault's time,
    start, and the next only once no partition is under-replicated."""
    brokers = ctx.pipeline.brokers
    for node in brokers.nodes():
        name, node_id = node.name, node.node_id
        _timed(f"{name} stopped (SIGTERM)", ctx, lambda n=node_id: brokers.stop(n))
        ctx.pipeline.wait(ctx.timing.fault_s)
        _timed(f"{name} started and every partition in sync", ctx,
               lambda n=node_id, what=name: (brokers.start(n),
                                             brokers.wait_in_sync(f"after restarting {what}")))
    brokers.elect_preferred_leaders()


def kill_worker(ctx: Context) -> None:
    survivor, victim = ctx.pipeline.workers[0], ctx.pipeline.workers[-1]
    victim.kill()
    ctx.note(f"{victim.name} SIGKILLed")
    partitions = set(range(ctx.pipeline.partitions))
    _timed(f"{survivor.name} owned every partition", ctx,
           lambda: wait_until(lambda: survivor.owned() == partitions, 120,
                              "the survivor to take every partition"))
    ctx.pipeline.wait(ctx.timing.fault_s)
    _timed(f"{victim.name} restarted on its disk; the group whole again", ctx,
           lambda: (victim.start(), ctx.pipeline.wait_group_stable()))


def rolling_upgrade(ctx: Context) -> None:
    current = ctx.pipeline.workers[0].env.get("NOTIPIPE_BATCH_MAX", "500")
    roll_workers(ctx, {"NOTIPIPE_BATCH_MAX": "400" if current != "400" else "500"})


def kill_connect(ctx: Context) -> None:
    connect = Connect(ctx.pipeline.stack)
    stop_component(ctx, connect, signal.SIGKILL)
    ctx.pipeline.wait(ctx.timing.fault_s)
    _timed("Connect restarted and the pipeline's connectors running", ctx,
           lambda: (connect.start(), ctx.pipeline.wait_connectors_running()))


def postgres_down(ctx: Context) -> None:
    """The JDBC sinks fail their tasks when the database goes under them; the stack's watchdog
    (stack/connect_watchdog.py) restarts them, and they resume from their committed offsets."""
    pipeline = ctx.pipeline
    postgres = Postgres(pipeline.stack)
    stop_component(ctx, postgres, signal.SIGINT)  # fast shutdown: clients are disconnected
    failed: set[str] = set()
    deadline = time.monotonic() + ctx.timing.fault_s
    while time.monotonic() < deadline:
        failed.update(pipeline.failed_tasks())
        pipeline.wait(1)
    _timed("PostgreSQL restarted", ctx, postgres.start)
    _timed("every sink task running again", ctx,
           lambda: pipeline.wait_connectors_running(restarted=True))
    ctx.note(f"tasks failed while it was away and were restarted by the watchdog: "
             f"{', '.join(sorted(n.removeprefix(pipeline.prefix) for n in failed)) or 'none'}")


def gateway_503(ctx: Context) -> None:
    fault = {"channel": "*", "mode": "error", "status": 503, "duration_s": ctx.timing.fault_s,
             "match": ctx.ledger.user_prefix}
    request = urllib.request.Request(f"{ctx.pipeline.stack.stub_url}/faults", method="POST",
                                     data=json.dumps(fault).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10):
        pass
    ctx.note(f"the gateway answers 503 for {ctx.timing.fault_s:.0f}s")
    ctx.pipeline.wait(ctx.timing.fault_s)


def _gateway_retried(ctx: Context, observed: Observed) -> None:
    failed = observed.gateway_attempts - len(observed.gateway)
    ctx.note(f"the gateway refused {failed:,} requests; each was retried until accepted")
    ctx.check("the gateway's 503s were retried", failed > 0)


def registry_down(ctx: Context) -> None:
    """Producers switch to a newly registered schema while the registry is away: the workers
    have not seen its id, cannot fetch it, and must wait, not dead-letter or crash."""
    pipeline = ctx.pipeline
    register_event_v2(ctx)
    ctx.load.prepare_writer(2)  # the producer has the new id before the registry goes
    registry = Registry(pipeline.stack)
    stop_component(ctx, registry, signal.SIGTERM)
    ctx.load.use_writer(2)
    ctx.note("producers write v2, a schema id no worker has seen")
    waiting = wait_until(lambda: any((w.health() or {}).get("state") == "waiting"
                                     for w in pipeline.workers), 60, "a worker to say it waits")
    ctx.check("a worker's /health said it waits for the registry", bool(waiting))
    # A stop while a batch waits: bounded (NOTIPIPE_STOP_WAIT_S), the partitions move on.
    leaving = pipeline.workers[-1]
    took = leaving.stop()
    bound = float(leaving.env["NOTIPIPE_STOP_WAIT_S"])
    ctx.note(f"{leaving.name} stopped (SIGTERM) in {took:.1f}s while its batch waited "
             f"(NOTIPIPE_STOP_WAIT_S={bound:g})")
    ctx.check("a waiting worker stopped within its bound and a margin", took < bound + 15)
    leaving.start()
    ctx.pipeline.wait(max(0.0, ctx.timing.fault_s - 10))
    _timed("the registry restarted", ctx, registry.start)
    _timed("every partition owned by one healthy worker", ctx, pipeline.wait_group_stable)


def _rollout(ctx: Context, producers_first: bool) -> None:
    pipeline = ctx.pipeline
    if pipeline.workers[0].env.get(EVENT_VERSION) != "1":
        ctx.note("workers pinned to v1 first (the old code)")
        roll_workers(ctx, {EVENT_VERSION: "1"})
    ctx.load.use_writer(1)
    pipeline.wait(ctx.timing.fault_s / 3)
    register_event_v2(ctx)
    steps = [("producers", lambda: (ctx.load.use_writer(2), ctx.note("producers write v2"))),
             ("workers", lambda: roll_workers(ctx, {EVENT_VERSION: "0"}))]
    for name, step in steps if producers_first else reversed(steps):
        step()
        pipeline.wait(ctx.timing.fault_s / 3)
        if name == "workers":
            ctx.marks["workers_on_v2"] = time.time()
    ctx.marks.setdefault("workers_on_v2", time.time())


def rollout_producers_first(ctx: Context) -> None:
    _rollout(ctx, producers_first=True)


def rollout_workers_first(ctx: Context) -> None:
    _rollout(ctx, producers_first=False)


def _summary_used(ctx: Context, observed: Observed) -> None:
    """Once every worker reads v2, an SMS or push delivery of a v2 event with a summary carries it."""
    since = ctx.marks["workers_on_v2"]
    events = {e.event_id: e for e in ctx.ledger.offered}
    checked = wrong = 0
    for seen in observed.topics:
        if seen.channel not in ("sms", "push") or seen.kind != "SINGLE":
            continue
        event_id = seen.event_ids[0]
        event = events[event_id]
        if (event.summary is None or ctx.load.written_with.get(event_id) != 2
                or ctx.load.sent_at.get(event_id, 0) < since):
            continue
        checked += 1
        wrong += seen.body != event.summary
    ctx.note(f"{checked} SMS/push deliveries of v2 events sent after the roll: {wrong} without "
             "their summary")
    ctx.check("the new field reaches SMS and push once the workers read v2", checked > 0 and not wrong)


def db_migration(ctx: Context) -> None:
    """Expand (V005: a column and an index, built concurrently), the connector writing the new
    column, then contract (V006: the column required), while the sinks write."""
    pipeline, stack = ctx.pipeline, ctx.pipeline.stack
    failures: set[str] = set()

    def watch() -> None:
        failures.update(pipeline.failed_tasks())

    _timed("V005 (expand) applied", ctx,
           lambda: apply_migrations(stack, schema=pipeline.db_schema, up_to=5))
    watch()
    config = pipeline.connector_configs(5)["jdbc-inbox"]
    columns = "transforms.columns.include"

    def update() -> None:
        apply_connector(stack, pipeline.connectors["jdbc-inbox"], config)
        wait_until(lambda: pipeline.tasks_configured("jdbc-inbox", columns, config[columns]), 120,
                   "jdbc-inbox's task to run with the new column list")
        pipeline.wait_connectors_running()

    _timed("jdbc-inbox writes the new column (config updated, its task restarted)", ctx, update)
    deadline = time.monotonic() + ctx.timing.fault_s
    while time.monotonic() < deadline:
        watch()
        pipeline.wait(1)
    _timed("V006 (contract) applied", ctx,
           lambda: apply_migrations(stack, schema=pipeline.db_schema, up_to=6))
    for _ in range(5):
        watch()
        pipeline.wait(1)
    ctx.check("no sink task failed during the migration", not failures)
    if failures:
        ctx.note(f"failed tasks: {sorted(failures)}")


def _inbox_rows_have_reason(ctx: Context, observed: Observed) -> None:
    query = sql.SQL("SELECT count(*) FILTER (WHERE reason IS NULL), count(*) FROM {}.inbox "
                    "WHERE user_id LIKE %s").format(sql.Identifier(ctx.pipeline.db_schema))
    with psycopg.connect(ctx.pipeline.stack.postgres_dsn, autocommit=True) as conn:
        missing, total = conn.execute(query, (ctx.ledger.user_prefix + "%",)).fetchone()
    ctx.note(f"{total:,} inbox rows of the run, {missing} without a reason")
    ctx.check("every inbox row has its reason after the contract step", total > 0 and missing == 0)


def spike(ctx: Context) -> None:
    ctx.load.multiplier = 10.0
    sent = ctx.load.sent
    ctx.pipeline.wait(ctx.timing.fault_s)
    ctx.load.multiplier = 1.0
    rate = (ctx.load.sent - sent) / ctx.timing.fault_s
    ctx.note(f"10x for {ctx.timing.fault_s:.0f}s: {rate:,.0f} events/s offered "
             f"({ctx.load.rate * 10:,.0f} asked)")


def _spike_bound(timing: Timing) -> float:
    return DRAIN_BOUND_S + 10 * timing.fault_s  # the backlog is up to ten times the spike


SCENARIOS: dict[str, Scenario] = {s.name: s for s in [
    Scenario("leader-kill", "SIGKILL the broker leading an events partition, start it again",
             Timing(3, 8, 3), Timing(10, 20, 10), leader_kill, quiet=False, brokers=3),
    Scenario("broker-roll", "a rolling restart of every broker, each back in sync before the next",
             Timing(3, 2, 3), Timing(10, 5, 10), broker_roll, quiet=False, brokers=3),
    Scenario("kill-worker", "SIGKILL one of two workers; the survivor takes over, the killed one "
             "comes back on its disk", Timing(3, 5, 3), Timing(10, 20, 10), kill_worker),
    Scenario("rolling-upgrade", "each worker stopped (SIGTERM) and started with a changed "
             "setting, one at a time", Timing(3, 0, 3), Timing(10, 0, 10), rolling_upgrade,
             quiet=False),
    Scenario("kill-connect", "SIGKILL Kafka Connect, start it again", Timing(3, 5, 3),
             Timing(10, 20, 10), kill_connect, quiet=False),
    Scenario("postgres-down", "PostgreSQL stopped, started again", Timing(3, 8, 3),
             Timing(10, 30, 10), postgres_down, quiet=False),
    Scenario("gateway-503", "the gateway answers 503 to everything", Timing(3, 8, 3),
             Timing(10, 30, 10), gateway_503, quiet=False, after=_gateway_retried),
    Scenario("registry-down", "the schema registry stopped while producers switch to a newly "
             "registered schema; a worker stopped while its batch waits", Timing(3, 12, 3),
             Timing(10, 30, 10), registry_down, quiet=False),
    Scenario("schema-rollout", "NotificationEvent v2: producers switch first, then the workers "
             "are rolled to read it", Timing(3, 9, 3), Timing(10, 30, 10), rollout_producers_first,
             quiet=False, after=_summary_used),
    Scenario("schema-rollout-reverse", "NotificationEvent v2: the workers are rolled first, then "
             "producers switch", Timing(3, 9, 3), Timing(10, 30, 10), rollout_workers_first,
             quiet=False, after=_summary_used),
    Scenario("db-migration", "expand (a column and an index) and contract (the column required) "
             "on the inbox while the sinks write", Timing(3, 4, 3), Timing(10, 20, 10),
             db_migration, quiet=False, after=_inbox_rows_have_reason),
    Scenario("spike", "ten times the load for a while", Timing(3, 5, 3), Timing(10, 60, 10),
             spike, quiet=False, drain_bound_s=_spike_bound),
]}

