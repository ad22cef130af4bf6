"""The worker's parts, each built without a broker: the composition itself, the users' store, the
replay gate, and the router's path from a batch of consumed records to deliveries."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from test_avro_codec import FakeRegistry
from unit_helpers import event, go

from streams.connection.kafka import KafkaAccess
from streams.contracts.avro_codec import AvroCodec
from streams.contracts.pipeline_codec import pipeline_codec
from streams.contracts.schemas import load_schema, subject_for
from streams.contracts.topics import Topics
from streams.core.clock import ManualClock
from streams.core.model import Channel, Event
from streams.core.routing.state import UserState
from streams.core.settings import RouterSettings
from streams.faust_ext.consumer import LeanDrainConsumer
from streams.worker.app import Worker
from streams.worker.delivery_producer import DeliveryProduceError
from streams.worker.event_router import EventRouter
from streams.worker.metrics import PipelineMetrics
from streams.worker.progress import RouterProgress
from streams.worker.replay_gate import ReplayGate
from streams.worker.schema_wait import SchemaWait
from streams.worker.settings import WorkerSettings
from streams.worker.state_cache import StateCache
from streams.worker.topology import Topology
from streams.worker.user_store import UserStore

NO_BROKER = "127.0.0.1:9"  # the discard port: nothing listens there on a test machine
NOW = 1_736_942_400_000
TOPICS = Topics("t.")


# -- the composition ---------------------------------------------------------------------------
@pytest.fixture
def worker(tmp_path: Path):
    settings = WorkerSettings.from_env({"NOTIPIPE_BOOTSTRAP_SERVERS": NO_BROKER,
                                        "NOTIPIPE_TOPIC_PREFIX": "t.",
                                        "NOTIPIPE_DATA_DIR": str(tmp_path)})
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    built = Worker(settings, RouterSettings(), ManualClock(NOW),
                   Topology(TOPICS, TOPICS.ticks(settings.app_id), partitions=4),
                   KafkaAccess(NO_BROKER, security_protocol="PLAINTEXT"))
    yield built
    loop.close()
    asyncio.set_event_loop(None)


def test_the_worker_is_composed_without_touching_a_broker(worker: Worker) -> None:
    app = worker.app
    assert set(app.agents) >= {"preferences", "router", "receipts", "ticks"}
    assert {t.name for t in app.tables.values()} == {"users", "preferences"}
    assert issubclass(app.transport.Consumer, LeanDrainConsumer)
    assert worker.router.rules == RouterSettings()


def test_faust_commits_wait_for_the_workers_own_producer(worker: Worker) -> None:
    """The commit hook is in place: Faust's pre-commit flush fails while a changelog record of the
    worker's producer is unacknowledged (no broker here), so no offset could be committed."""
    worker.deliveries.flush_timeout_s = 0.2
    worker.deliveries.send_raw("t.users-changelog", 0, b"u1", b"{}", lambda p, o: None)
    with pytest.raises(DeliveryProduceError, match="unacknowledged"):
        asyncio.get_event_loop().run_until_complete(worker.app.producer.flush())


# -- the users' store ---------------------------------------------------------------------------
class DictTable(dict):
    """A raw table as the store sees one: bytes in, bytes out, one partition is enough here."""

    def get_raw(self, partition: int, key: bytes) -> bytes | None:
        return self.get(key)

    def set_raw(self, partition: int, key: bytes, value: bytes) -> None:
        self[key] = value


def _store() -> UserStore:
    return UserStore(DictTable(), DictTable(), StateCache(100), prefs_cache_users=10)


def test_the_store_saves_states_and_finds_due_holds_again_after_a_rebalance() -> None:
    store = _store()
    state = store.load(0, b"u1")
    result = go(event("e1", category="social.like"), None, state, NOW,
                settings=RouterSettings(digest_window_ms=60_000))
    assert result.holds_changed
    store.save(0, b"u1", state)
    store.schedule(0, b"u1", state)
    assert store.due_users(0, NOW, limit=10) == []
    store.on_partitions_assigned()  # the index is derived: rebuilt from a scan of the table
    assert store.due_users(0, NOW + 60_000, limit=10) == [b"u1"]
    assert UserState.from_dict(orjson.loads(store.users[b"u1"])).holds


def test_an_emptied_state_is_deleted_and_preferences_are_cached_until_reset() -> None:
    store = _store()
    store.save(0, b"u1", UserState.from_dict(None))
    assert b"u1" not in store.users
    store.store_prefs(b"u2", {"user_id": "u2", "channels": [], "muted_categories": [],
                              "muted_by_channel": {}, "category_modes": {}, "quiet_hours": None,
                              "timezone": "UTC", "updated_at": NOW})
    assert store.prefs(0, b"u2") is not None
    store.reset_prefs(b"u2")
    assert store.prefs(0, b"u2") is None and b"u2" not in store.preferences


# -- the replay gate ----------------------------------------------------------------------------
def test_flushes_wait_until_the_replay_reaches_the_end_seen_after_the_rebalance() -> None:
    gate = ReplayGate(lambda partitions: {p: 10 for p in partitions if p == 1})
    asyncio.run(gate.refresh_if_stale([0, 1]))
    assert not gate.holds(0) and gate.holds(1)
    gate.routed(1, 9)
    assert gate.holds(1)
    gate.routed(1, 10)
    assert not gate.holds(1)


# -- the router's path --------------------------------------------------------------------------
@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    generation_id: int = 1
    timestamp: float | None = None


@dataclass(eq=False)
class ConsumedEvent:
    message: Message


@dataclass
class SentDeliveries:
    sent: list = field(default_factory=list)

    def send(self, delivery, tracker=None) -> None:
        self.sent.append(delivery)


@dataclass
class DeadLettered:
    written: list = field(default_factory=list)

    async def write(self, message, error) -> None:
        self.written.append((message.offset, getattr(error, "dlq_reason", None) or error.reason))


def _router(registry: FakeRegistry | None = None
            ) -> tuple[EventRouter, SentDeliveries, DeadLettered, AvroCodec]:
    registry = registry or FakeRegistry()
    writer = AvroCodec(registry, {subject_for(TOPICS.events): load_schema("notification_event")})
    writer.schema_id(subject_for(TOPICS.events))  # registers it, as `stack up` does
    for topic in TOPICS.all_deliveries().values():
        AvroCodec(registry, {subject_for(topic): load_schema("delivery")}).schema_id(subject_for(topic))
    sent, dead = SentDeliveries(), DeadLettered()
    codec, metrics, progress = pipeline_codec(registry, TOPICS), PipelineMetrics(), RouterProgress(60)
    schemas = SchemaWait(codec, [], metrics, progress, delays=lambda attempt: 0.001, in_thread=False)
    router = EventRouter(_store(), codec, sent, dead, metrics, RouterSettings(), ManualClock(NOW),
                         ReplayGate(lambda p: {}), generation=lambda: 1, schemas=schemas,
                         progress=progress)
    return router, sent, dead, writer


def _consumed(writer: AvroCodec, offset: int, user: str, channels: tuple = (Channel.IN_APP,),
              generation: int = 1, value: bytes | None = None) -> ConsumedEvent:
    event = Event(event_id=f"e{offset}", user_id=user, category="billing", occurred_at=NOW,
                  title="t", body="b", channels=channels)
    if value is None:
        value = writer.encode(subject_for(TOPICS.events), event.to_avro())
    return ConsumedEvent(Message(TOPICS.events, 0, offset, user.encode(), value, generation))


def test_a_batch_is_routed_to_deliveries_and_a_bad_record_is_dead_lettered() -> None:
    router, sent, dead, writer = _router()
    batch = [_consumed(writer, 0, "u1"), _consumed(writer, 1, "u1", value=b"not avro"),
             _consumed(writer, 2, "u2")]
    routed = asyncio.run(router.route_batch(batch))
    assert routed == batch
    assert [(d.user_id, list(d.event_ids)) for d in sent.sent] == [("u1", ["e0"]), ("u2", ["e2"])]
    assert dead.written == [(1, "undecodable")]
    assert router.metrics.counters[("events", "routed")] == 3


def test_events_fetched_before_a_rebalance_are_left_for_the_new_owner() -> None:
    router, sent, _, writer = _router()
    asyncio.run(router.route_batch([_consumed(writer, 0, "u1", generation=0)]))
    assert sent.sent == []


def test_a_flushing_users_events_are_parked_and_routed_in_order_when_it_ends() -> None:
    router, sent, _, writer = _router()
    acked: list = []

    async def ack(event) -> None:
        acked.append(event.message.offset)

    router.ack = ack
    router.parking.begin_flush([b"u1"])
    first = [_consumed(writer, 0, "u1"), _consumed(writer, 1, "u2")]
    assert [e.message.offset for e in asyncio.run(router.route_batch(first))] == [1]
    router.parking.end_flush()
    asyncio.run(router.route_batch([_consumed(writer, 2, "u1")]))
    assert [list(d.event_ids) for d in sent.sent] == [["e1"], ["e0"], ["e2"]]
    assert acked == [0] and router.metrics.counters[("events", "parked")] == 1


def test_a_worker_pinned_to_an_event_version_reads_that_version(tmp_path: Path) -> None:
    """NOTIPIPE_EVENT_SCHEMA_VERSION=1: the worker reads events as v1 did (no summary), as the
    code released with v1 would during a rollout."""
    settings = WorkerSettings.from_env({"NOTIPIPE_BOOTSTRAP_SERVERS": NO_BROKER,
                                        "NOTIPIPE_TOPIC_PREFIX": "t.", "NOTIPIPE_DATA_DIR": str(tmp_path),
                                        "NOTIPIPE_EVENT_SCHEMA_VERSION": "1"})
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        built = Worker(settings, RouterSettings(), ManualClock(NOW),
                       Topology(TOPICS, TOPICS.ticks(settings.app_id), partitions=4),
                       KafkaAccess(NO_BROKER, security_protocol="PLAINTEXT"))
        fields = orjson.loads(built.codec.schema_text(subject_for(TOPICS.events)))["fields"]
        assert "summary" not in {f["name"] for f in fields}
    finally:
        loop.close()
        asyncio.set_event_loop(None)


def test_an_unreleased_event_version_is_refused_by_name() -> None:
    from streams.core.config import ConfigError

    with pytest.raises(ConfigError, match="NOTIPIPE_EVENT_SCHEMA_VERSION.*v9 was never released"):
        WorkerSettings.from_env({"NOTIPIPE_EVENT_SCHEMA_VERSION": "9"})
