"""Channel fallback end to end: events and receipts in through Kafka, a real worker process, the
fallback deliveries read back from the delivery topics."""

from __future__ import annotations

import pytest

from streams.client.sdk import NotificationClient, now_ms
from streams.core.model import ReceiptStatus
from streams.core.routing.deliveries import fallback_delivery_id
from tests.integration.fallback_helpers import (
    FALLBACK_ENV,
    TIMEOUT_S,
    new_user,
    phone_of,
    reachable_everywhere,
    send_login,
    send_receipt,
    set_prefs,
)
from tests.integration.pipeline import PipelineEnv, Watcher, WorkerProcess, set_clock
from tests.waiting import wait_for

ROUTER_ENV = FALLBACK_ENV


@pytest.fixture(autouse=True)
def real_time(worker: WorkerProcess, pipeline_env: PipelineEnv):
    """Each test starts on the real clock, whatever the one before it set."""
    set_clock([worker], pipeline_env, None)
    yield
    pipeline_env.real_clock()


def wait_counter(worker: WorkerProcess, name: str, value: int) -> None:
    wait_for(lambda: worker.counter(name) == value, 30, f"{name} to reach {value}")


def test_a_bounced_push_goes_out_by_sms_linked_to_it(worker, client: NotificationClient,
                                                      watcher: Watcher) -> None:
    u = new_user()
    set_prefs(worker, client, reachable_everywhere(u))
    event_id = send_login(client, u)
    [push] = watcher.wait_for_user(u, 1, "push")
    assert (push.reason, list(push.event_ids), push.fallback_of) == ("immediate", [event_id], None)
    cleared = worker.counter("fallback.cleared")

    send_receipt(client, push, ReceiptStatus.BOUNCED)
    [sms] = watcher.wait_for_user(u, 1, "sms")
    assert (sms.reason, sms.fallback_of, sms.address) == ("fallback_bounced", push.delivery_id, phone_of(u))
    assert (sms.title, sms.body, sms.event_ids) == (push.title, push.body, push.event_ids)
    assert sms.delivery_id == fallback_delivery_id(u, sms.channel, push.delivery_id)
    # The SMS is watched in turn; its DELIVERED receipt settles the chain.
    send_receipt(client, sms, ReceiptStatus.DELIVERED)
    wait_counter(worker, "fallback.cleared", cleared + 1)
    assert watcher.for_user(u, "email") == []


def test_a_push_without_receipt_in_time_goes_out_by_sms(worker, client: NotificationClient,
                                                        watcher: Watcher, pipeline_env) -> None:
    u = new_user()
    set_prefs(worker, client, reachable_everywhere(u))
    send_login(client, u)
    [push] = watcher.wait_for_user(u, 1, "push")
    set_clock([worker], pipeline_env, now_ms() + TIMEOUT_S * 1000 + 1_000)
    [sms] = watcher.wait_for_user(u, 1, "sms")
    assert (sms.reason, sms.fallback_of) == ("fallback_timeout", push.delivery_id)


def test_a_delivered_push_gets_no_fallback_and_a_late_receipt_sends_nothing(
        worker, client: NotificationClient, watcher: Watcher, pipeline_env) -> None:
    """Two sign-ins: the first push is confirmed, the second is not. When both deadlines have
    passed, only the second goes out by SMS; a bounce of its push arriving after that is late.
    A marker on SMS and e-mail sent after all that comes after anything either could have caused
    (same user: same partition of each delivery topic)."""
    u = new_user()
    set_prefs(worker, client, reachable_everywhere(u))
    first_event, second_event = send_login(client, u, 1), send_login(client, u, 2)
    pushes = watcher.wait_for_user(u, 2, "push")
    first = next(d for d in pushes if list(d.event_ids) == [first_event])
    second = next(d for d in pushes if list(d.event_ids) == [second_event])
    cleared, late = worker.counter("fallback.cleared"), worker.counter("receipt.late")
    send_receipt(client, first, ReceiptStatus.DELIVERED)
    wait_counter(worker, "fallback.cleared", cleared + 1)

    set_clock([worker], pipeline_env, now_ms() + TIMEOUT_S * 1000 + 1_000)
    [sms] = watcher.wait_for_user(u, 1, "sms")
    assert (sms.fallback_of, sms.reason) == (second.delivery_id, "fallback_timeout")
    send_receipt(client, second, ReceiptStatus.BOUNCED)
    wait_counter(worker, "receipt.late", late + 1)

    marker = client.send(user_id=u, category="billing", title="marker", body="m", channels=["sms", "email"])
    client.flush()
    watcher.wait_for_user(u, 1, "email")
    found = watcher.wait_for_user(u, 2, "sms")
    assert [list(d.event_ids) for d in found] == [[second_event], [marker]]
    assert [list(d.event_ids) for d in watcher.for_user(u, "email")] == [[marker]]
