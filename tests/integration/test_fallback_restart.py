"""A pending fallback across a SIGKILLed worker: it is in the user's changelogged state, so the
restarted worker (same disk, or a new one) sends it exactly once, by delivery_id.

Each test runs on a pipeline of its own. The fallback timeout is five minutes: it cannot pass
before the kill, so "pending across the kill" is a fact; the test then moves the worker's clock.
"""

from __future__ import annotations

import shutil
from itertools import takewhile

import pytest

from streams.client.sdk import NotificationClient, now_ms
from streams.core.model import Channel, Delivery, ReceiptStatus
from streams.core.routing.deliveries import fallback_delivery_id
from tests.integration.fallback_helpers import (
    FALLBACK_ENV,
    TIMEOUT_S,
    new_user,
    reachable_everywhere,
    send_login,
    send_receipt,
    set_prefs,
)
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

ROUTER_ENV = FALLBACK_ENV
pipeline_env, client, watcher, worker = pipeline_fixtures("function")  # a pipeline per test


def _push_pending_across_a_kill(worker: WorkerProcess, client: NotificationClient,
                                watcher: Watcher, env: PipelineEnv) -> tuple[str, Delivery, int]:
    """A user's sign-in out by push, its fallback pending and committed, the worker SIGKILLed
    before the fallback could time out. Returns the user, the push and its deadline."""
    user = new_user()
    set_prefs(worker, client, reachable_everywhere(user))
    sent_at = now_ms()
    send_login(client, user)
    [push] = watcher.wait_for_user(user, 1, "push")
    wait_for(lambda: all_committed(env), 30, "the worker to commit")
    worker.kill()
    deadline = sent_at + TIMEOUT_S * 1000
    assert now_ms() < deadline, "the fallback could have timed out before the kill: nothing tested"
    return user, push, deadline


def _restart(worker: WorkerProcess, client: NotificationClient, watcher: Watcher,
             lose_local_state: bool) -> None:
    if lose_local_state:  # as on a new machine: the users table comes back from its changelog
        shutil.rmtree(worker.data_dir)
    worker.start()
    wait_until_routing(worker, client, watcher)


def _assert_sms_once(client: NotificationClient, watcher: Watcher, user: str, push: Delivery,
                     reason: str) -> None:
    """One SMS fallback of the push, and nothing else by SMS until a marker sent after it."""
    [sms] = watcher.wait_for_user(user, 1, "sms", timeout_s=60)
    assert (sms.reason, sms.fallback_of) == (reason, push.delivery_id)
    assert sms.delivery_id == fallback_delivery_id(user, Channel.SMS, push.delivery_id)
    marker = client.send(user_id=user, category="billing", title="marker", body="m", channels=["sms"])
    client.flush()

    def is_marker(delivery: Delivery) -> bool:
        return list(delivery.event_ids) == [marker]

    wait_for(lambda: any(is_marker(d) for d in watcher.for_user(user, "sms")), 30, "the marker by SMS")
    before_marker = list(takewhile(lambda d: not is_marker(d), watcher.for_user(user, "sms")))
    assert {d.delivery_id for d in before_marker} == {sms.delivery_id}, "another fallback went out"


@pytest.mark.parametrize("lose_local_state", [False, True], ids=["same-disk", "new-disk"])
def test_a_pending_fallback_survives_sigkill_and_times_out_once(
        worker, client, watcher, pipeline_env, lose_local_state: bool) -> None:
    user, push, deadline = _push_pending_across_a_kill(worker, client, watcher, pipeline_env)
    _restart(worker, client, watcher, lose_local_state)
    assert watcher.for_user(user, "sms") == []
    set_clock([worker], pipeline_env, deadline + 1_000)
    _assert_sms_once(client, watcher, user, push, "fallback_timeout")


def test_a_bounce_received_while_the_worker_was_down_sends_the_fallback_once(
        worker, client, watcher, pipeline_env) -> None:
    user, push, _ = _push_pending_across_a_kill(worker, client, watcher, pipeline_env)
    send_receipt(client, push, ReceiptStatus.BOUNCED)
    _restart(worker, client, watcher, lose_local_state=False)
    _assert_sms_once(client, watcher, user, push, "fallback_bounced")
