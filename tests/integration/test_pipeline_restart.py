"""Crash safety: the worker is SIGKILLed (no shutdown, no final commit) and started again.

Each test runs on a pipeline of its own (own topics, group and worker), so none depends on what
another left behind. The digest window is five minutes: a held digest cannot go out until the test
moves the worker's clock past it, so "held across the kill" is a fact, not a race against time.
"""

from __future__ import annotations

import shutil
import uuid

import pytest

from streams.client.sdk import NotificationClient, now_ms
from tests.integration.pipeline import (
    PipelineEnv,
    Watcher,
    WorkerProcess,
    all_committed,
    pipeline_fixtures,
    set_clock,
    wait_until_routing,
)
from tests.waiting import wait_for

WINDOW_MS = 300_000
ROUTER_ENV = {
    "NOTIPIPE_DIGEST_WINDOW_S": str(WINDOW_MS // 1000),
    "NOTIPIPE_DEFAULT_CHANNELS": "in_app",
    "NOTIPIPE_DIGEST_CATEGORIES": "social.like",
}


pipeline_env, client, watcher, worker = pipeline_fixtures("function")  # a pipeline per test


def _restart(worker: WorkerProcess, client: NotificationClient, watcher: Watcher,
             lose_local_state: bool = False) -> None:
    worker.kill()
    if lose_local_state:  # as on a new machine: the tables must come back from their changelogs
        shutil.rmtree(worker.data_dir)
    worker.start()
    wait_until_routing(worker, client, watcher)


def _hold_three_likes(workers: list[WorkerProcess],
                      client: NotificationClient) -> tuple[str, list[str], int]:
    """A new user's 3 digest-category events, held by one of the workers. Returns the user, the
    event ids and a time before which their window cannot close."""
    user = f"u-{uuid.uuid4().hex[:10]}"
    before = sum(w.counter("held.digest") for w in workers)
    sent_at = now_ms()
    ids = [client.send(user_id=user, category="social.like", title=f"Like {i}", body="b")
           for i in range(3)]
    client.flush()
    wait_for(lambda: sum(w.counter("held.digest") for w in workers) == before + 3, 20,
             "3 held events")
    return user, ids, sent_at + WINDOW_MS


def _kill_before_the_window_closes(worker: WorkerProcess, window_closes_at: int) -> None:
    """SIGKILL the worker, asserting it cannot have flushed the digest yet: otherwise the test
    would pass without testing recovery."""
    worker.kill()
    assert now_ms() < window_closes_at, "the digest window closed before the kill: nothing tested"


def _flush_everything_held(workers: list[WorkerProcess], env: PipelineEnv, windows: int) -> None:
    """Move the workers' clock past `windows` digest windows from now: every hold held until
    then is due."""
    set_clock(workers, env, now_ms() + windows * WINDOW_MS + 1_000)


def _assert_delivered_once(workers: list[WorkerProcess], env: PipelineEnv,
                           client: NotificationClient, watcher: Watcher, user: str,
                           ids: list[str]) -> None:
    """The held events arrive as one DIGEST, and nothing is sent twice.

    Two markers follow it: an immediate one, and a new like, held for a full window of its own
    and flushed by moving the clock again. Any second digest of the first window was due before
    that like, and would join it or arrive ahead of it: the user's deliveries must be exactly
    the digest and the two markers."""
    _flush_everything_held(workers, env, windows=1)
    digest = watcher.wait_for_user(user, 1, timeout_s=60)[0]
    assert digest.kind == "DIGEST" and sorted(digest.event_ids) == sorted(ids)
    marker = client.send(user_id=user, category="billing", title="marker", body="m")
    client.flush()
    watcher.wait_for_user(user, 2)
    held_before = sum(w.counter("held.digest") for w in workers)
    late_like = client.send(user_id=user, category="social.like", title="late", body="b")
    client.flush()
    wait_for(lambda: sum(w.counter("held.digest") for w in workers) == held_before + 1, 20,
             "the late like to be held")
    _flush_everything_held(workers, env, windows=2)
    found = watcher.wait_for_user(user, 3, timeout_s=60)
    assert [(d.kind, sorted(d.event_ids)) for d in found] == [
        ("DIGEST", sorted(ids)), ("SINGLE", [marker]), ("SINGLE", [late_like])]


@pytest.mark.parametrize("lose_local_state", [False, True], ids=["same-disk", "new-disk"])
def test_pending_digest_survives_sigkill_and_is_delivered_once(
        worker, client, watcher, pipeline_env, lose_local_state: bool) -> None:
    """With the worker's RocksDB kept, and with it gone (state from the changelog while events
    after the last commit are replayed: the case streams/faust_ext/partition_seek.py is about)."""
    user, ids, closes_at = _hold_three_likes([worker], client)
    _kill_before_the_window_closes(worker, closes_at)
    if lose_local_state:
        shutil.rmtree(worker.data_dir)
    worker.start()
    wait_until_routing(worker, client, watcher)
    assert watcher.for_user(user) == []

    _assert_delivered_once([worker], pipeline_env, client, watcher, user, ids)


def test_duplicate_sent_before_and_after_a_restart_is_delivered_once(worker, client, watcher,
                                                                      pipeline_env) -> None:
    user = f"u-{uuid.uuid4().hex[:10]}"
    event_id = str(uuid.uuid4())
    client.send(user_id=user, category="billing", title="Invoice", body="b", event_id=event_id)
    client.flush()
    assert [list(d.event_ids) for d in watcher.wait_for_user(user, 1)] == [[event_id]]
    # Let the worker commit past the event: only then is it a clean "before the restart".
    wait_for(lambda: all_committed(pipeline_env), 20, "the worker to commit")
    _restart(worker, client, watcher)

    client.send(user_id=user, category="billing", title="Invoice", body="b", event_id=event_id)
    marker = client.send(user_id=user, category="billing", title="marker", body="m")
    client.flush()
    found = watcher.wait_for_user(user, 2, timeout_s=30)
    assert [list(d.event_ids) for d in found] == [[event_id], [marker]]
    assert worker.counter("dropped.duplicate") == 1  # a new process: its counters start at 0


def test_state_comes_back_from_the_changelog_alone(worker, client, watcher, pipeline_env) -> None:
    """Holds and dedupe memory of events the group has committed (so they are not replayed) are
    rebuilt from the users changelog when the worker's local RocksDB is gone."""
    user, ids, closes_at = _hold_three_likes([worker], client)
    wait_for(lambda: all_committed(pipeline_env), 20, "the worker to commit")
    _kill_before_the_window_closes(worker, closes_at)
    shutil.rmtree(worker.data_dir)
    worker.start()
    wait_until_routing(worker, client, watcher)
    assert watcher.for_user(user) == []

    # The dedupe memory: one of the held ids again, in a category sent at once. Had it been
    # forgotten, it would go out immediately, ahead of the digest and the markers.
    client.send(user_id=user, category="billing", title="again", body="b", event_id=ids[0])
    client.flush()
    wait_for(lambda: worker.counter("dropped.duplicate") == 1, 20, "the repeated id dropped")
    _assert_delivered_once([worker], pipeline_env, client, watcher, user, ids)


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
        held_before = [w.counter("held.digest") for w in workers]
        user, ids, closes_at = _hold_three_likes(workers, client)
        owners = [w for w, before in zip(workers, held_before, strict=True)
                  if w.counter("held.digest") == before + 3]
        assert len(owners) == 1, "one worker owns the user's partition and holds all three"
        owner = owners[0]
        survivor = second if owner is worker else worker
        _kill_before_the_window_closes(owner, closes_at)
        wait_for(lambda: len(survivor.owned_partitions()) == pipeline_env.stack.partitions,
                 90, "the survivor to own every partition")
        assert watcher.for_user(user) == []

        _assert_delivered_once([survivor], pipeline_env, client, watcher, user, ids)
    finally:
        second.stop()


def _split_between(workers: list[WorkerProcess], partitions: int) -> bool:
    owned = [w.owned_partitions() for w in workers]
    return all(owned) and set().union(*owned) == set(range(partitions)) and not owned[0] & owned[1]
