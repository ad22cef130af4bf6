"""Every routing rule observed end to end: events in through Kafka, a real worker process,
deliveries read back from the delivery topics."""

from __future__ import annotations

import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from streams.client.sdk import NotificationClient, now_ms
from streams.core.model import Channel, ChannelPreference, DeliveryMode, Preferences, QuietHours
from tests.integration.pipeline import PipelineEnv, Watcher, WorkerProcess, set_clock
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


def set_prefs(worker: WorkerProcess, client: NotificationClient, snapshot: Preferences) -> None:
    """Publish preferences and wait until the worker holds them.

    Events and preferences are separate topics: without this, an event sent right after its
    user's preferences may be routed before the worker has read them (a stream-table join sees
    the table as it is when the event is processed)."""
    before = worker.counter("preferences.stored")
    client.set_preferences(snapshot)
    client.flush()
    wait_for(lambda: worker.counter("preferences.stored") == before + 1, 20,
             "the worker to store prefs")


@pytest.fixture(autouse=True)
def real_time(worker: WorkerProcess, pipeline_env: PipelineEnv):
    """Each test starts on the real clock, whatever the one before it set."""
    set_clock([worker], pipeline_env, None)
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
    no_address_before = worker.counter("dropped.no_address")
    client.send(user_id=u, category="billing", title="t", body="b")
    client.flush()
    assert [d.channel.key for d in watcher.wait_for_user(u, 1)] == ["in_app"]
    # email is a default channel, but a user without preferences has no address for it.
    wait_for(lambda: worker.counter("dropped.no_address") == no_address_before + 1, 10,
             "no_address count")


def test_preferences_tombstone_brings_the_defaults_back(worker, client, watcher) -> None:
    u = user()
    set_prefs(worker, client, prefs(u, muted_categories=frozenset({"marketing"})))
    muted_before = worker.counter("dropped.muted")
    client.send(user_id=u, category="marketing", title="muted", body="b", channels=["in_app"])
    client.flush()
    # Routed (and dropped) before the tombstone is sent: the two travel on different topics.
    wait_for(lambda: worker.counter("dropped.muted") == muted_before + 1, 20, "the muted event")
    before = worker.counter("preferences.reset")
    no_address_before = worker.counter("dropped.no_address")
    client.reset_preferences(u)
    client.flush()
    wait_for(lambda: worker.counter("preferences.reset") == before + 1, 20, "the tombstone")
    after = client.send(user_id=u, category="marketing", title="default", body="b")
    client.flush()
    # Muted before the tombstone (had it gone out, it would arrive first: same partition); after
    # it, the defaults: in-app on, and email dropped for want of an address (counted when the
    # event is routed, so the count is the proof that nothing went out by email).
    assert [list(d.event_ids) for d in watcher.wait_for_user(u, 1)] == [[after]]
    assert watcher.for_user(u)[0].channel.key == "in_app"
    wait_for(lambda: worker.counter("dropped.no_address") == no_address_before + 1, 10,
             "the email without an address")
    assert watcher.for_user(u, "email") == []


def test_duplicate_event_id_is_delivered_once(worker, client, watcher) -> None:
    u = user()
    duplicates_before = worker.counter("dropped.duplicate")
    event_id = str(uuid.uuid4())
    for _ in range(3):
        client.send(user_id=u, category="billing", title="t", body="b", event_id=event_id,
                    channels=["in_app"])
    marker = client.send(user_id=u, category="billing", title="marker", body="m", channels=["in_app"])
    client.flush()
    found = watcher.wait_for_user(u, 2)
    assert [list(d.event_ids) for d in found] == [[event_id], [marker]]
    assert worker.counter("dropped.duplicate") - duplicates_before == 2


def test_expired_event_is_dropped_and_counted(worker, client, watcher) -> None:
    u = user()
    expired_before = worker.counter("dropped.expired")
    client.send(user_id=u, category="billing", title="late", body="b", channels=["in_app"],
                occurred_at=now_ms() - 60_000, expires_at=now_ms() - 1_000)
    marker = client.send(user_id=u, category="billing", title="marker", body="m", channels=["in_app"])
    client.flush()
    # Same user, same partition: the marker is routed after the expired event.
    assert [list(d.event_ids) for d in watcher.wait_for_user(u, 1)] == [[marker]]
    assert worker.counter("dropped.expired") == expired_before + 1


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
    disabled_before = worker.counter("dropped.channel_disabled")
    set_prefs(worker, client, prefs(u, channels={
        Channel.EMAIL: ChannelPreference(Channel.EMAIL, False, f"{u}@example.com")}))
    critical = client.send(user_id=u, category="security", title="Password changed", body="b",
                           priority="CRITICAL", channels=["email", "in_app"])
    client.flush()
    assert [list(d.event_ids) for d in watcher.wait_for_user(u, 1)] == [[critical]]
    wait_for(lambda: worker.counter("dropped.channel_disabled") == disabled_before + 1, 10,
             "channel_disabled count")
    # The positive marker: email enabled again, one more event. Had the critical one gone out by
    # email, it would be ahead of the marker on the user's partition of the email topic.
    set_prefs(worker, client, prefs(u))
    marker = client.send(user_id=u, category="security", title="marker", body="m",
                         channels=["email"])
    client.flush()
    assert [list(d.event_ids) for d in watcher.wait_for_user(u, 1, "email")] == [[marker]]


def test_digest_category_folds_a_burst_into_one_digest(worker, client, watcher,
                                                       pipeline_env) -> None:
    u = user()
    set_prefs(worker, client, prefs(u, channels={Channel.EMAIL: ChannelPreference(Channel.EMAIL, False)}))
    # The clock is moved an hour ahead and flows from there: every event is held at or after it.
    start = now_ms() + 3_600_000
    set_clock([worker], pipeline_env, start)
    ids = [client.send(user_id=u, category="social.like", title=f"Like {i}", body=f"user{i} liked",
                       occurred_at=start + i) for i in range(4)]
    client.flush()
    digest = watcher.wait_for_user(u, 1, "in_app", timeout_s=30)[0]
    assert digest.kind == "DIGEST" and digest.reason == "digest_window"
    assert sorted(digest.event_ids) == sorted(ids) and digest.item_count == 4
    assert digest.title == "4 new notifications in social.like"
    assert [item.title for item in digest.items][0] == "Like 3"  # newest first
    # Held for the whole window (3 s) from the first event, not sent at once. That the window is
    # not extended by later events is a unit test's (test_digest.py), on a clock that stands still.
    assert digest.created_at >= start + 3_000


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
    held_before = worker.counter("held.quiet_hours")
    # 23:59:57 local on a winter evening: inside quiet hours, before midnight.
    evening = datetime(2026, 12, 3, 23, 59, 57, tzinfo=berlin)
    set_clock([worker], pipeline_env, int(evening.timestamp() * 1000))
    night = client.send(user_id=u, category="billing", title="Invoice", body="b",
                        occurred_at=int(evening.timestamp() * 1000))
    critical = client.send(user_id=u, category="security", title="Login", body="b", priority="CRITICAL",
                           occurred_at=int(evening.timestamp() * 1000))
    client.flush()
    # CRITICAL bypasses quiet hours; the other event is held (counted), not sent.
    assert [list(d.event_ids) for d in watcher.wait_for_user(u, 1)] == [[critical]]
    wait_for(lambda: worker.counter("held.quiet_hours") == held_before + 1, 10, "the hold")
    # Past midnight, still quiet: the next morning 06:59:57, three seconds before the end.
    morning = datetime(2026, 12, 4, 6, 59, 57, tzinfo=berlin)
    set_clock([worker], pipeline_env, int(morning.timestamp() * 1000))
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
    # Ten minutes before the throttle window closes: all five events fall in it.
    set_clock([worker], pipeline_env, window_end - 600_000)
    held_before = worker.counter("held.throttle")
    ids = [client.send(user_id=u, category="billing", title=f"Invoice {i}", body="b") for i in range(5)]
    client.flush()
    singles = watcher.wait_for_user(u, 3, "email")
    assert [list(d.event_ids) for d in singles] == [[i] for i in ids[:3]]
    wait_for(lambda: worker.counter("held.throttle") == held_before + 2, 20, "two held events")
    assert len(watcher.for_user(u, "email")) == 3  # the two over the limit wait for the window
    set_clock([worker], pipeline_env, window_end + 100)
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


def _scrape(worker: WorkerProcess) -> dict[str, float]:
    """The worker's /metrics page as {series: value}."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {series: float(value) for series, value in
            (line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))}


def test_worker_metrics_are_exposed_for_prometheus(worker, client, watcher) -> None:
    before = _scrape(worker)
    u = user()  # a new user's one routed event: counters, a cached state and RocksDB data
    client.send(user_id=u, category="billing", title="t", body="b", channels=["in_app"])
    client.flush()
    watcher.wait_for_user(u, 1)
    after = _scrape(worker)

    def delta(series: str) -> float:
        return after[series] - before.get(series, 0.0)

    assert delta('notipipe_delivered_total{channel="in_app",kind="single"}') == 1
    assert delta('notipipe_events_total{outcome="routed"}') == 1
    assert delta("notipipe_state_cache_users") == 1
    # RocksDB holds that user's state, inside the worker's one shared budget (256 MB, soft).
    assert 0 < after["notipipe_rocksdb_cache_bytes"] < 2 * 256 * 1024**2
    assert after["notipipe_rocksdb_memtable_bytes"] <= after["notipipe_rocksdb_cache_bytes"]
    assert after["notipipe_state_cache_estimated_bytes"] > before["notipipe_state_cache_estimated_bytes"]
    # Event to delivery, observed once the broker has acknowledged the delivery: this one event.
    latency = "notipipe_delivery_latency_seconds_count"
    wait_for(lambda: _scrape(worker)[latency] == before.get(latency, 0) + 1, 10,
             "the delivery's latency to be observed")
    # How old events were when the router took them: a histogram that has seen this one.
    name = "notipipe_event_age_at_routing_seconds"
    assert delta(f"{name}_count") == 1
    assert after[f'{name}_bucket{{le="+Inf"}}'] == after[f"{name}_count"]
    assert delta(f"{name}_sum") > 0
