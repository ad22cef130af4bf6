"""A broker lost under load, on a replicated stack of the module's own (three KRaft nodes,
replication factor 3, two in-sync replicas, no unclean election, with its own registry,
PostgreSQL, gateway stub and Connect; tests/integration/cluster.py), judged by the verifier as
every `notipipe chaos` scenario is (chaos/): the leader of an events partition SIGKILLed and
started again, then a rolling restart of every broker. Each must end with every expected (user,
channel, event) in exactly one delivery on the topics, in PostgreSQL and at the gateway, the
gateway's order per user kept, nothing dead-lettered and the lags drained."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chaos.verifier import Verifier
from stack.settings import StackSettings
from tests.integration.chaos_harness import chaos_verifier, run_scenario
from tests.integration.cluster import ReplicatedCluster


@pytest.fixture(scope="module")
def cluster(settings: StackSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicatedCluster]:
    cluster = ReplicatedCluster(tmp_path_factory.mktemp("cluster"), settings)
    with pytest.MonkeyPatch.context() as patch:
        # The SDK, the tools and the worker processes log in with the stack's own secrets.
        patch.setenv("NOTIPIPE_HOME", str(cluster.settings.home))
        try:
            cluster.up()
            yield cluster
        finally:
            cluster.down()


@pytest.fixture(scope="module")
def verifier(cluster: ReplicatedCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Verifier]:
    with chaos_verifier(cluster.settings, tmp_path_factory.mktemp("chaos")) as verifier:
        yield verifier


def test_the_cluster_is_replicated_and_refuses_to_lose_a_write(cluster: ReplicatedCluster,
                                                               verifier: Verifier) -> None:
    topic = verifier.pipeline.topics.events
    assert len(cluster.replicas(topic, 0)) == 3
    assert cluster.topic_config(topic)["min.insync.replicas"] == "2"
    assert cluster.topic_config(topic)["unclean.leader.election.enable"] == "false"


def test_the_leader_of_an_events_partition_sigkilled_and_started_again(verifier: Verifier) -> None:
    outcome = run_scenario(verifier, "leader-kill")
    assert any("SIGKILLed" in note for note in outcome.notes)
    assert outcome.verdict.view("gateway").expected > 0  # the gateway's view was judged too


def test_a_rolling_restart_of_every_broker(verifier: Verifier) -> None:
    outcome = run_scenario(verifier, "broker-roll")
    assert sum("stopped (SIGTERM)" in note for note in outcome.notes) == 3
