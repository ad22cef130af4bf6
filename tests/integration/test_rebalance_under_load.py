"""A rebalance while events flow: a second worker joins the group, then leaves it, and every
event still arrives in exactly one delivery (by `delivery_id`; the same delivery read twice is
what at-least-once allows and the sinks absorb)."""

from __future__ import annotations

import uuid

from streams.client.sdk import NotificationClient
from tests.integration.load import Load, delivery_ids_by_event
from tests.integration.pipeline import PipelineEnv, Watcher, WorkerProcess
from tests.waiting import wait_for

ROUTER_ENV = {
    "NOTIPIPE_DIGEST_WINDOW_S": "2",
    "NOTIPIPE_DEFAULT_CHANNELS": "in_app",
    "NOTIPIPE_DIGEST_CATEGORIES": "social.like",
    "NOTIPIPE_THROTTLE_LIMIT": "0",
}
EVENTS_PER_S = 150


def _owners(workers: list[WorkerProcess]) -> list[set[int]]:
    return [w.owned_partitions() for w in workers]


def test_a_worker_joining_and_leaving_under_load_loses_and_repeats_nothing(
        worker: WorkerProcess, client: NotificationClient, watcher: Watcher,
        pipeline_env: PipelineEnv) -> None:
    partitions = set(range(pipeline_env.stack.partitions))
    users = [f"rb-{uuid.uuid4().hex[:8]}-{i}" for i in range(60)]
    # A users changelog worth restoring: the joining worker reads its partitions' share of it
    # while events keep arriving.
    preload = [f"pre-{uuid.uuid4().hex[:6]}-{i}" for i in range(5_000)]
    for u in preload:
        client.send(user_id=u, category="billing", title="t", body="b")
    client.flush()
    wait_for(lambda: worker.counter("events.routed") >= len(preload), 120, "the preload routed")
    second = WorkerProcess(pipeline_env)
    with Load(client, users, EVENTS_PER_S) as load:
        wait_for(lambda: load.count() > EVENTS_PER_S, 20, "a second of load before the join")
        joined_at = load.count()
        second.start()
        try:
            wait_for(lambda: all(_owners([worker, second])), 120, "the second worker to get partitions")
            assert load.count() > joined_at, "events flowed while the group rebalanced"
            left_at = load.count()
            wait_for(lambda: load.count() > left_at + EVENTS_PER_S, 20, "load on two workers")
        finally:
            second.stop()  # SIGTERM: it leaves the group, and the first worker takes over
        wait_for(lambda: worker.owned_partitions() == partitions, 120,
                 "the first worker to own every partition again")
        after_leave = load.count()
        wait_for(lambda: load.count() > after_leave + EVENTS_PER_S, 20, "load after the leave")

    def undelivered() -> set[str]:
        seen = {event_id for user in users for d in watcher.for_user(user) for event_id in d.event_ids}
        return set(load.sent) - seen

    wait_for(lambda: not undelivered(), 120, "every event to be delivered")
    deliveries_of = delivery_ids_by_event(watcher, users)
    twice = {e: ids for e, ids in deliveries_of.items() if len(ids) > 1}
    assert twice == {}, f"{len(twice)} events in more than one delivery"
    assert set(deliveries_of) == set(load.sent)
    assert [dl for dl in watcher.dead_letters if dl[0]["key"].decode() in users] == []
