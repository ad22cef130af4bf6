"""A broker lost under load, on a replicated cluster of the module's own (three KRaft nodes,
replication factor 3, two in-sync replicas, no unclean election; tests/integration/cluster.py):
the leader of an events partition SIGKILLed and back, then a rolling restart of every broker.
Each ends with every event in exactly one distinct delivery, nothing dead-lettered, and the
router's group caught up with its input.

NOTIPIPE_TEST_BROKER_DOWN_S (default 20) is how long the killed broker stays down: at least until
its partitions have other leaders and events sent meanwhile are delivered, whatever it says."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import pytest

from streams.client.sdk import NotificationClient
from tests.integration.cluster import ReplicatedCluster
from tests.integration.load import Load, delivery_ids_by_event
from tests.integration.pipeline import PipelineEnv, Watcher, WorkerProcess, make_pipeline_env
from tests.waiting import wait_for

ROUTER_ENV = {
    "NOTIPIPE_DIGEST_WINDOW_S": "2",
    "NOTIPIPE_DEFAULT_CHANNELS": "in_app",
    "NOTIPIPE_DIGEST_CATEGORIES": "social.like",
    "NOTIPIPE_THROTTLE_LIMIT": "0",
}
EVENTS_PER_S = 100


def _down_s() -> float:
    raw = os.environ.get("NOTIPIPE_TEST_BROKER_DOWN_S", "20")
    try:
        value = float(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(f"NOTIPIPE_TEST_BROKER_DOWN_S={raw!r}: expected seconds (0 or more)")
    return value


@pytest.fixture(scope="module")
def cluster(settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicatedCluster]:
    cluster = ReplicatedCluster(tmp_path_factory.mktemp("cluster"), settings)
    with pytest.MonkeyPatch.context() as patch:
        # The SDK and the worker processes log in with the cluster's own secrets.
        patch.setenv("NOTIPIPE_HOME", str(cluster.settings.home))
        try:
            cluster.up()
            yield cluster
        finally:
            cluster.down()


@pytest.fixture(scope="module")
def pipeline_env(cluster: ReplicatedCluster, tmp_path_factory: pytest.TempPathFactory) -> PipelineEnv:
    """The pipeline of conftest's `client`, `watcher` and `worker`, on the cluster (whose topics
    go with it)."""
    return make_pipeline_env(cluster.settings, tmp_path_factory.mktemp("pipeline"), ROUTER_ENV)


def _users(tag: str) -> list[str]:
    return [f"{tag}-{uuid.uuid4().hex[:8]}-{i}" for i in range(40)]


def _delivered(watcher: Watcher, users: list[str], event_ids: list[str]) -> bool:
    return set(event_ids) <= set(delivery_ids_by_event(watcher, users))


def _load_flows(load: Load, what: str) -> None:
    """Returns once another second's worth of events has been sent."""
    start = load.count()
    wait_for(lambda: load.count() >= start + EVENTS_PER_S, 30, f"a second of load {what}")


def _every_event_delivered_once(load: Load, users: list[str], watcher: Watcher,
                                cluster: ReplicatedCluster, env: PipelineEnv) -> None:
    sent = set(load.sent)
    wait_for(lambda: _delivered(watcher, users, list(sent)), 120, "every event to be delivered")
    by_event = delivery_ids_by_event(watcher, users)
    twice = {event: ids for event, ids in by_event.items() if len(ids) > 1}
    assert twice == {}, f"{len(twice)} events in more than one delivery"
    assert set(by_event) == sent
    assert [dl for dl in watcher.dead_letters if dl[0]["key"].decode() in users] == []
    events = env.client_settings.topics.events
    wait_for(lambda: cluster.lag(env.stack.app_id, events, env.stack.partitions) == 0, 60,
             "the router's lag back to 0")


def test_the_leader_of_an_events_partition_killed_and_restarted(
        cluster: ReplicatedCluster, pipeline_env: PipelineEnv, worker: WorkerProcess,
        client: NotificationClient, watcher: Watcher) -> None:
    events = pipeline_env.client_settings.topics.events
    victim = cluster.leader(events, 0)
    assert victim == cluster.replicas(events, 0)[0], "a fresh cluster: its preferred replica leads"
    users = _users("kill")
    with Load(client, users, EVENTS_PER_S) as load:
        _load_flows(load, "before the kill")
        cluster.kill(victim)
        killed_at = time.monotonic()
        wait_for(lambda: cluster.leader(events, 0) not in (victim, -1), 60,
                 f"{events}/0 to get a leader other than broker {victim}")
        # One broker down: the other two replicas still make min.insync.replicas, so events go on
        # in and deliveries out, through the partitions' new leaders.
        moved_at = load.count()
        _load_flows(load, "with a broker down")
        sent_while_down = load.sent_since(moved_at)
        wait_for(lambda: _delivered(watcher, users, sent_while_down), 120,
                 f"events sent while broker {victim} is down to be delivered")
        # The scenario's own duration, not a wait for anything: the broker stays down this long.
        time.sleep(max(0.0, _down_s() - (time.monotonic() - killed_at)))
        cluster.restart(victim)
        wait_for(lambda: not cluster.under_replicated(), 120,
                 f"broker {victim} back in the in-sync replicas of every partition")
        cluster.elect_preferred_leaders()
        wait_for(lambda: cluster.leader(events, 0) == victim, 60, f"{events}/0 led by broker {victim} again")
        _load_flows(load, "after the restart")
    _every_event_delivered_once(load, users, watcher, cluster, pipeline_env)


def test_a_rolling_restart_of_every_broker(
        cluster: ReplicatedCluster, pipeline_env: PipelineEnv, worker: WorkerProcess,
        client: NotificationClient, watcher: Watcher) -> None:
    users = _users("roll")
    with Load(client, users, EVENTS_PER_S) as load:
        _load_flows(load, "before the first restart")
        for node in cluster.nodes():
            cluster.stop(node.node_id)
            _load_flows(load, f"with {node.name} stopped")
            cluster.restart(node.node_id)
            # The next broker goes only once this one has caught up with every partition.
            wait_for(lambda: not cluster.under_replicated(), 120,
                     f"no under-replicated partition after restarting {node.name}")
        cluster.elect_preferred_leaders()
        _load_flows(load, "after the rolling restart")
    _every_event_delivered_once(load, users, watcher, cluster, pipeline_env)
