"""Crash safety: the worker is SIGKILLed (no shutdown, no final commit) and started again."""

from __future__ import annotations

import shutil
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition

from streams.client import NotificationClient
from tests.integration.kafka_clients import admin_config
from tests.integration.pipeline import PipelineEnv, Watcher, WorkerProcess, wait_until_routing
from tests.waiting import wait_for

ROUTER_ENV = {
    "NOTIPIPE_DIGEST_WINDOW_S": "5",
    "NOTIPIPE_DEFAULT_CHANNELS": "in_app",
    "NOTIPIPE_DIGEST_CATEGORIES": "social.like",
}


def _all_committed(env: PipelineEnv) -> bool:
    """Has the router group committed everything on the events topic?"""
    consumer = Consumer({**admin_config(env.stack),
                         "group.id": f"{env.prefix}router", "enable.auto.commit": False})
    try:
        topic = f"{env.prefix}notifications.events"
        parts = [TopicPartition(topic, p) for p in range(env.stack.partitions)]
        for tp in consumer.committed(parts, timeout=10):
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            if high > low and tp.offset < high:
                return False
        return True
    finally:
        consumer.close()


def _restart(worker: WorkerProcess, client: NotificationClient, watcher: Watcher,
             lose_local_state: bool = False) -> None:
    worker.kill()
    if lose_local_state:  # as on a new machine: the tables must come back from their changelogs
        shutil.rmtree(worker.data_dir)
    worker.start()
    wait_until_routing(worker, client, watcher)


def _assert_one_digest_then_a_marker(client: NotificationClient, watcher: Watcher, user: str,
                                     ids: list[str]) -> None:
    """The held events arrive as one DIGEST; nothing is sent twice: a marker routed afterwards
    arrives, and there is still one digest."""
    digest = watcher.wait_for_user(user, 1, timeout_s=60)[0]
    assert digest.kind == "DIGEST" and sorted(digest.event_ids) == sorted(ids)
    marker = client.send(user_id=user, category="billing", title="marker", body="m")
    client.flush()
    found = watcher.wait_for_user(user, 2)
    assert [list(d.event_ids) for d in found][1] == [marker]
    assert [d.kind for d in found] == ["DIGEST", "SINGLE"]


@pytest.mark.parametrize("lose_local_state", [False, True], ids=["same-disk", "new-disk"])
def test_pending_digest_survives_sigkill_and_is_delivered_once(worker, client, watcher,
                                                                lose_local_state: bool) -> None:
    """With the worker's RocksDB kept, and with it gone (state from the changelog while events
    after the last commit are replayed: the case fresh_partition_seek.py is about)."""
    user, ids = _three_likes_held([worker], client)
    assert watcher.for_user(user) == []  # the window (5 s) is still open
    _restart(worker, client, watcher, lose_local_state)

    _assert_one_digest_then_a_marker(client, watcher, user, ids)


def test_duplicate_sent_before_and_after_a_restart_is_delivered_once(worker, client, watcher,
                                                                      pipeline_env) -> None:
    user = f"u-{uuid.uuid4().hex[:10]}"
    event_id = str(uuid.uuid4())
    client.send(user_id=user, category="billing", title="Invoice", body="b", event_id=event_id)
    client.flush()
    assert [list(d.event_ids) for d in watcher.wait_for_user(user, 1)] == [[event_id]]
    # Let the worker commit past the event: only then is it a clean "before the restart".
    wait_for(lambda: _all_committed(pipeline_env), 20, "the worker to commit")
    _restart(worker, client, watcher)

    client.send(user_id=user, category="billing", title="Invoice", body="b", event_id=event_id)
    marker = client.send(user_id=user, category="billing", title="marker", body="m")
    client.flush()
    found = watcher.wait_for_user(user, 2, timeout_s=30)
    assert [list(d.event_ids) for d in found] == [[event_id], [marker]]


def test_state_comes_back_from_the_changelog_alone(worker, client, watcher, pipeline_env) -> None:
    """Holds and dedupe memory of events the group has committed (so they are not replayed) are
    rebuilt from the users changelog when the worker's local RocksDB is gone."""
    user, ids = _three_likes_held([worker], client)
    wait_for(lambda: _all_committed(pipeline_env), 20, "the worker to commit")
    assert watcher.for_user(user) == []
    _restart(worker, client, watcher, lose_local_state=True)

    digest = watcher.wait_for_user(user, 1, timeout_s=60)[0]
    assert digest.kind == "DIGEST" and sorted(digest.event_ids) == sorted(ids)
    client.send(user_id=user, category="social.like", title="again", body="b", event_id=ids[0])
    marker = client.send(user_id=user, category="billing", title="marker", body="m")
    client.flush()
    found = watcher.wait_for_user(user, 2, timeout_s=30)
    assert [list(d.event_ids) for d in found][1] == [marker]  # the repeated id was a duplicate


def test_a_surviving_worker_takes_over_a_killed_ones_pending_digest(worker, client, watcher,
                                                                     pipeline_env) -> None:
    """Two workers; the one holding a user's digest is SIGKILLed. The other takes its partitions
    over (state from the changelog, uncommitted events replayed) and sends the digest once."""
    second = WorkerProcess(pipeline_env)
    second.start()
    workers = [worker, second]
    try:
        wait_for(lambda: _split_between(workers, pipeline_env.stack.partitions), 90,
                 "both workers to own partitions")
        held_before = [w.counters().get("held.digest", 0) for w in workers]
        user, ids = _three_likes_held(workers, client)
        owner = next(w for w, before in zip(workers, held_before, strict=True)
                     if w.counters().get("held.digest", 0) >= before + 3)
        survivor = second if owner is worker else worker
        owner.kill()
        wait_for(lambda: len(survivor.counters().get("partitions", [])) == pipeline_env.stack.partitions,
                 90, "the survivor to own every partition")

        _assert_one_digest_then_a_marker(client, watcher, user, ids)
    finally:
        second.stop()
        if worker.proc is None or worker.proc.poll() is not None:  # later tests use this one
            worker.start()
        wait_until_routing(worker, client, watcher)


def _split_between(workers: list[WorkerProcess], partitions: int) -> bool:
    owned = [set(w.counters().get("partitions", [])) for w in workers]
    return all(owned) and set().union(*owned) == set(range(partitions)) and not owned[0] & owned[1]


def _three_likes_held(workers: list[WorkerProcess],
                      client: NotificationClient) -> tuple[str, list[str]]:
    """A new user's 3 digest-category events, held by one of the workers (the window is 5 s)."""
    user = f"u-{uuid.uuid4().hex[:10]}"
    before = sum(w.counters().get("held.digest", 0) for w in workers)
    ids = [client.send(user_id=user, category="social.like", title=f"Like {i}", body="b")
           for i in range(3)]
    client.flush()
    wait_for(lambda: sum(w.counters().get("held.digest", 0) for w in workers) >= before + 3, 20,
             "3 held events")
    return user, ids
