"""Every routing rule observed end to end: events in through Kafka, a real worker process,
deliveries read back from the delivery topics."""

from __future__ import annotations

import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from streams.client import NotificationClient, now_ms
from streams.model import Channel, ChannelPreference, DeliveryMode, Preferences, QuietHours
from tests.integration.pipeline import PipelineEnv, Watcher, WorkerProcess
from tests.waiting import wait_for

ROUTER_ENV = {
    "NOTIPIPE_DIGEST_WINDOW_S": "3",
    "NOTIPIPE_THROTTLE_WINDOW_S": "3600",
    "NOTIPIPE_THROTTLE_LIMIT": "100",
    "NOTIPIPE_DEFAULT_CHANNELS": "in_app,email",
    "NOTIPIPE_DIGEST_CATEGORIES": "social.like",
    "NOTIPIPE_MANDATORY_CATEGORIES": "security",
}


def user() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


def prefs(user_id: str, **kwargs) -> Preferences:
    channels = {Channel.IN_APP: ChannelPreference(Channel.IN_APP),
                Channel.EMAIL: ChannelPreference(Channel.EMAIL, True, f"{user_id}@example.com")}
    channels.update(kwargs.pop("channels", {}))
    return Preferences(user_id=user_id, channels=channels, updated_at=now_ms(), **kwargs)


def counter(worker: WorkerProcess, name: str) -> int:
    return worker.counters().get(name, 0)


def set_clock(worker: WorkerProcess, env: PipelineEnv, fake_now_ms: int) -> None:
    """Set the worker's clock and wait until it reads it (it re-reads the file every 100 ms)."""
    env.set_clock(fake_now_ms)
    wait_for(lambda: abs(worker.counters().get("clock_ms", 0) - fake_now_ms) < 5_000, 10,
             "the worker to see the new time")


def set_prefs(worker: WorkerProcess, client: NotificationClient, snapshot: Preferences) -> None:
    """Publish preferences and wait until the worker holds them.

    Events and preferences are separate topics: without this, an event sent right after its
    user's preferences may be routed before the worker has read them (a stream-table join sees
    the table as it is when the event is processed)."""
    before = counter(worker, "preferences.stored")
    client.set_preferences(snapshot)
    client.flush()
    wait_for(lambda: counter(worker, "preferences.stored") > before, 20, "the worker to store prefs")


@pytest.fixture(autouse=True)
def real_time(worker: WorkerProcess, pipeline_env: PipelineEnv):
    """Each test starts on the real clock, whatever the one before it set."""
    pipeline_env.real_clock()
    wait_for(lambda: abs(worker.counters().get("clock_ms", 0) - now_ms()) < 5_000, 10,
             "the worker to be back on the real clock")
    yield
    pipeline_env.real_clock()


def test_immediate_event_is_delivered_on_every_enabled_channel(worker, client: NotificationClient,
                                                               watcher: Watcher) -> None:
    u = user()
    set_prefs(worker, client, prefs(u))
    event_id = client.send(user_id=u, category="billing", title="Invoice", body="Invoice #1 is ready")
    client.flush()
    email = watcher.wait_for_user(u, 1, "email")[0]
    in_app = watcher.wait_for_user(u, 1, "in_app")[0]
    assert email.address == f"{u}@example.com" and in_app.address == u
    for delivery in (email, in_app):
        assert delivery.kind == "SINGLE" and list(delivery.event_ids) == [event_id]
        assert (delivery.title, delivery.body) == ("Invoice", "Invoice #1 is ready")
    assert email.delivery_id != in_app.delivery_id


def test_user_without_preferences_gets_the_defaults(worker, client, watcher) -> None:
    u = user()
    no_address_before = counter(worker, "dropped.no_address")
    client.send(user_id=u, category="billing", title="t", body="b")
    client.flush()
    assert [d.channel.key for d in watcher.wait_for_user(u, 1)] == ["in_app"]
    # email is a default channel, but a user without preferences has no address for it.
    wait_for(lambda: counter(worker, "dropped.no_address") > no_address_before, 10, "no_address count")


def test_preferences_tombstone_brings_the_defaults_back(worker, client, watcher) -> None:
    u = user()
    set_prefs(worker, client, prefs(u, muted_categories=frozenset({"marketing"})))
    muted_before = counter(worker, "dropped.muted")
    client.send(user_id=u, category="marketing", title="muted", body="b", channels=["in_app"])
    client.flush()
    # Routed (and dropped) before the tombstone is sent: the two travel on different topics.
    wait_for(lambda: counter(worker, "dropped.muted") > muted_before, 20, "the muted event")
    before = counter(worker, "preferences.reset")
    client.reset_preferences(u)
    client.flush()
    wait_for(lambda: counter(worker, "preferences.reset") > before, 20, "the tombstone")
    after = client.send(user_id=u, category="marketing", title="default", body="b")
    client.flush()
    # Muted before the tombstone; after it, the defaults: in-app on, email without an address.
    assert [list(d.event_ids) for d in watcher.wait_for_user(u, 1)] == [[after]]
    assert [d.channel.key for d in watcher.for_user(u)] == ["in_app"]


def test_duplicate_event_id_is_delivered_once(worker, client, watcher) -> None:
    u = user()
    duplicates_before = counter(worker, "dropped.duplicate")
    event_id = str(uuid.uuid4())
    for _ in range(3):
        client.send(user_id=u, category="billing", title="t", body="b", event_id=event_id,
                    channels=["in_app"])
    marker = client.send(user_id=u, category="billing", title="marker", body="m", channels=["in_app"])
    client.flush()
    found = watcher.wait_for_user(u, 2)
    assert [list(d.event_ids) for d in found] == [[event_id], [marker]]
    assert counter(worker, "dropped.duplicate") - duplicates_before == 2


def test_expired_event_is_dropped_and_counted(worker, client, watcher) -> None:
    u = user()
    expired_before = counter(worker, "dropped.expired")
    client.send(user_id=u, category="billing", title="late", body="b", channels=["in_app"],
                occurred_at=now_ms() - 60_000, expires_at=now_ms() - 1_000)
    marker = client.send(user_id=u, category="billing", title="marker", body="m", channels=["in_app"])
    client.flush()
    # Same user, same partition: the marker is routed after the expired event.
    assert [list(d.event_ids) for d in watcher.wait_for_user(u, 1)] == [[marker]]
    assert counter(worker, "dropped.expired") == expired_before + 1


def test_muted_category_is_not_sent_but_mandatory_cannot_be_muted(worker, client, watcher) -> None:
    u = user()
    set_prefs(worker, client, prefs(u, muted_categories=frozenset({"marketing", "security"}),
                                 muted_by_channel={Channel.EMAIL: frozenset({"billing"})}))
    client.send(user_id=u, category="marketing", title="Sale", body="50% off")
    billing = client.send(user_id=u, category="billing", title="Invoice", body="b")
    security = client.send(user_id=u, category="security", title="New login", body="b")
    client.flush()
    in_app = watcher.wait_for_user(u, 2, "in_app")
    assert [list(d.event_ids) for d in in_app] == [[billing], [security]]
    email = watcher.wait_for_user(u, 1, "email")
    assert [list(d.event_ids) for d in email] == [[security]]  # billing muted on email only


def test_disabled_channel_gets_nothing_even_when_critical(worker, client, watcher) -> None:
    u = user()
    disabled_before = counter(worker, "dropped.channel_disabled")
    set_prefs(worker, client, prefs(u, channels={
        Channel.EMAIL: ChannelPreference(Channel.EMAIL, False, f"{u}@example.com")}))
    critical = client.send(user_id=u, category="security", title="Password changed", body="b",
                           priority="CRITICAL", channels=["email", "in_app"])
    client.flush()
    assert [list(d.event_ids) for d in watcher.wait_for_user(u, 1)] == [[critical]]
    wait_for(lambda: counter(worker, "dropped.channel_disabled") > disabled_before, 10,
             "channel_disabled count")
    assert watcher.for_user(u, "email") == []


def test_digest_category_folds_a_burst_into_one_digest(worker, client, watcher) -> None:
    u = user()
    set_prefs(worker, client, prefs(u, channels={Channel.EMAIL: ChannelPreference(Channel.EMAIL, False)}))
    start = now_ms()
    ids = [client.send(user_id=u, category="social.like", title=f"Like {i}", body=f"user{i} liked",
                       occurred_at=start + i) for i in range(4)]
    client.flush()
    digest = watcher.wait_for_user(u, 1, "in_app", timeout_s=30)[0]
    assert digest.kind == "DIGEST" and digest.reason == "digest_window"
    assert sorted(digest.event_ids) == sorted(ids) and digest.item_count == 4
    assert "4" in digest.title
    assert [item.title for item in digest.items][0] == "Like 3"  # newest first
    # the window opened with the first event and did not wait for more
    assert digest.created_at - digest.first_occurred_at < 15_000


def test_single_held_event_goes_out_as_single(worker, client, watcher) -> None:
    u = user()
    set_prefs(worker, client, prefs(u, channels={Channel.EMAIL: ChannelPreference(Channel.EMAIL, False)},
                                 category_modes={"social.comment": DeliveryMode.DIGEST}))
    event_id = client.send(user_id=u, category="social.comment", title="Ada commented", body="Nice!")
    client.flush()
    delivery = watcher.wait_for_user(u, 1, "in_app")[0]
    assert delivery.kind == "SINGLE" and delivery.reason == "digest_window"
    assert list(delivery.event_ids) == [event_id] and delivery.title == "Ada commented"


def test_quiet_hours_across_midnight_in_berlin(worker, client, watcher, pipeline_env) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    u = user()
    set_prefs(worker, client, prefs(u, quiet_hours=QuietHours(22 * 60, 7 * 60), timezone="Europe/Berlin",
                                 channels={Channel.EMAIL: ChannelPreference(Channel.EMAIL, False)}))
    client.flush()
    held_before = counter(worker, "held.quiet_hours")
    # 23:59:57 local on a winter evening: inside quiet hours, before midnight.
    evening = datetime(2026, 12, 3, 23, 59, 57, tzinfo=berlin)
    set_clock(worker, pipeline_env, int(evening.timestamp() * 1000))
    night = client.send(user_id=u, category="billing", title="Invoice", body="b",
                        occurred_at=int(evening.timestamp() * 1000))
    critical = client.send(user_id=u, category="security", title="Login", body="b", priority="CRITICAL",
                           occurred_at=int(evening.timestamp() * 1000))
    client.flush()
    # CRITICAL bypasses quiet hours; the other event is held (counted), not sent.
    assert [list(d.event_ids) for d in watcher.wait_for_user(u, 1)] == [[critical]]
    wait_for(lambda: counter(worker, "held.quiet_hours") == held_before + 1, 10, "the hold")
    # Past midnight, still quiet: the next morning 06:59:57, three seconds before the end.
    morning = datetime(2026, 12, 4, 6, 59, 57, tzinfo=berlin)
    set_clock(worker, pipeline_env, int(morning.timestamp() * 1000))
    released = watcher.wait_for_user(u, 2, timeout_s=30)[1]
    assert list(released.event_ids) == [night] and released.reason == "quiet_hours_end"
    local = datetime.fromtimestamp(released.created_at / 1000, berlin)
    assert (local.date().isoformat(), local.hour) == ("2026-12-04", 7)


def test_throttle_overflow_arrives_in_the_next_digest(worker, client, watcher, pipeline_env) -> None:
    u = user()
    set_prefs(worker, client, prefs(u, channels={
        Channel.EMAIL: ChannelPreference(Channel.EMAIL, True, f"{u}@example.com", throttle_limit=3),
        Channel.IN_APP: ChannelPreference(Channel.IN_APP, False)}))
    client.flush()
    hour = 3_600_000
    window_end = (now_ms() // hour + 2) * hour
    set_clock(worker, pipeline_env, window_end - 6_000)  # six seconds before the throttle window closes
    ids = [client.send(user_id=u, category="billing", title=f"Invoice {i}", body="b") for i in range(5)]
    client.flush()
    singles = watcher.wait_for_user(u, 3, "email")
    assert [list(d.event_ids) for d in singles] == [[i] for i in ids[:3]]
    digest = watcher.wait_for_user(u, 4, "email", timeout_s=30)[3]
    assert digest.kind == "DIGEST" and digest.reason == "throttle_window"
    assert sorted(digest.event_ids) == sorted(ids[3:])
    assert digest.created_at >= window_end


def test_malformed_event_goes_to_the_dlq_and_the_rest_are_delivered(worker, client, watcher,
                                                                     pipeline_env) -> None:
    u = user()
    first = client.send(user_id=u, category="billing", title="one", body="b", channels=["in_app"])
    client.send_raw(f"{pipeline_env.prefix}notifications.events", u, b'{"event_id": "not avro"}')
    last = client.send(user_id=u, category="billing", title="two", body="b", channels=["in_app"])
    client.flush()
    assert [list(d.event_ids) for d in watcher.wait_for_user(u, 2)] == [[first], [last]]
    record, headers = wait_for(
        lambda: next((dl for dl in watcher.dead_letters if dl[0]["key"] == u.encode()), None),
        20, "the dead letter")
    assert record["value"] == b'{"event_id": "not avro"}'  # original bytes, untouched
    assert record["reason"] == "undecodable" and "0x7b" in record["error"]
    assert headers["notipipe.error.reason"] == b"undecodable"


def test_worker_metrics_are_exposed_for_prometheus(worker, client, watcher) -> None:
    import urllib.request

    u = user()  # one routed event: counters, a cached state and RocksDB data exist
    client.send(user_id=u, category="billing", title="t", body="b", channels=["in_app"])
    client.flush()
    watcher.wait_for_user(u, 1)
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    assert 'notipipe_delivered_total{channel="in_app",kind="single"}' in text
    gauges = dict(line.split(" ") for line in text.splitlines()
                  if line.startswith(("notipipe_rocksdb_", "notipipe_state_cache_")))
    # RocksDB holds that user's state, inside the worker's one shared budget (256 MB, soft).
    assert 0 < int(gauges["notipipe_rocksdb_cache_bytes"]) < 2 * 256 * 1024**2
    assert int(gauges["notipipe_state_cache_users"]) >= 1
    assert "notipipe_rocksdb_memtable_bytes" in gauges
    assert "notipipe_state_cache_estimated_bytes" in gauges
    # How old events were when the router took them: a histogram that has seen this one.
    name = "notipipe_event_age_at_routing_seconds"
    age = dict(line.rsplit(" ", 1) for line in text.splitlines() if line.startswith(name))
    assert int(age[f"{name}_count"]) >= 1
    assert age[f'{name}_bucket{{le="+Inf"}}'] == age[f"{name}_count"]
    assert float(age[f"{name}_sum"]) > 0
