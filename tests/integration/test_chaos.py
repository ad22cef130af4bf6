"""Faults and changes under load on the real stack, each proven by the verifier (chaos/): the short
variants of `notipipe chaos` (outages of seconds, a modest fixed rate), one pipeline and worker
group for the module. Each scenario must pass: every expected (user, channel, event) in exactly
one delivery on the topics, in PostgreSQL and at the gateway, the gateway's order per user kept,
nothing dead-lettered, the lags drained; plus the scenario's own checks. And the verifier must
catch a delivery dropped from a sink, and one doubled.

It stops and starts the stack's Connect, PostgreSQL and registry: other modules' tests run before
or after it, never meanwhile."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from chaos.scenarios import SCENARIOS
from chaos.verdict import judge
from chaos.verifier import Outcome, Verifier
from stack.settings import StackSettings
from tests.integration.chaos_harness import chaos_verifier, run_scenario


@pytest.fixture(scope="module")
def verifier(settings: StackSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Verifier]:
    with chaos_verifier(settings, tmp_path_factory.mktemp("chaos")) as verifier:
        yield verifier


@pytest.fixture(scope="module")
def killed_worker(verifier: Verifier) -> Outcome:
    return run_scenario(verifier, "kill-worker")


def test_a_worker_sigkilled_under_load_loses_and_doubles_nothing(killed_worker: Outcome) -> None:
    assert killed_worker.verdict.view("topics").arrived == killed_worker.expected


def test_the_verifier_catches_a_dropped_and_a_doubled_delivery(verifier: Verifier,
                                                                killed_worker: Outcome) -> None:
    """After a run that passed, one real delivery_log row is deleted and another event is given a
    second delivery of its own: read back again, the verdict names both."""
    pipeline, ledger, mark = verifier.pipeline, killed_worker.ledger, killed_worker.mark
    assert ledger is not None and mark is not None
    table = sql.Identifier(pipeline.db_schema, "delivery_log")
    with psycopg.connect(pipeline.stack.postgres_dsn, autocommit=True) as conn:
        dropped, user, channel, event_ids = conn.execute(
            sql.SQL("SELECT delivery_id, user_id, channel, event_ids FROM {} WHERE user_id LIKE %s "
                    "AND cardinality(event_ids) = 1 ORDER BY delivery_id LIMIT 1").format(table),
            (ledger.user_prefix + "%",)).fetchone()
        conn.execute(sql.SQL("DELETE FROM {} WHERE delivery_id = %s").format(table), (dropped,))
        again, again_user, again_channel, again_events = conn.execute(
            sql.SQL("SELECT delivery_id, user_id, channel, event_ids FROM {} WHERE user_id LIKE %s "
                    "AND delivery_id <> %s ORDER BY delivery_id DESC LIMIT 1").format(table),
            (ledger.user_prefix + "%", dropped)).fetchone()
        conn.execute(sql.SQL("INSERT INTO {} (delivery_id, user_id, channel, kind, category, "
                             "priority, title, body, item_count, event_ids, reason, created_at, "
                             "first_occurred_at) SELECT 'again-' || delivery_id, user_id, channel, "
                             "kind, category, priority, title, body, item_count, event_ids, reason, "
                             "created_at, first_occurred_at FROM {} WHERE delivery_id = %s"
                             ).format(table, table), (again,))
    verdict = judge(ledger.expected(), verifier.observer.read(ledger, mark), True, 1.0)
    assert not verdict.ok
    log = verdict.view("delivery_log")
    assert log.lost == [(user, channel.lower(), event_ids[0])]
    assert log.doubled == {(again_user, again_channel.lower(), event): {again, f"again-{again}"}
                           for event in again_events}
    assert verdict.view("topics").ok and verdict.view("gateway").ok


# The broker faults run on a replicated stack of their own: test_broker_faults.py.
@pytest.mark.parametrize("name", [n for n, s in SCENARIOS.items() if n != "kill-worker" and s.brokers == 1])
def test_scenario(verifier: Verifier, name: str) -> None:
    run_scenario(verifier, name)
