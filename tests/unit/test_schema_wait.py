"""A batch whose writer schema cannot be fetched because the registry is away waits and is routed
when it is back, never dead-lettered (streams/worker/schema_wait.py); a schema the registry does
not have is dead-lettered at once. And what `/health` says meanwhile (progress.py)."""

from __future__ import annotations

import asyncio

import pytest
from test_avro_codec import FakeRegistry
from test_worker_composition import _consumed, _router

from streams.contracts.avro_codec import AvroCodec, SchemaUnavailable
from streams.contracts.schemas import schema_text
from streams.worker.metrics import PipelineMetrics
from streams.worker.progress import RouterProgress
from streams.worker.schema_wait import SchemaWait, retry_delays


class FlakyRegistry(FakeRegistry):
    """Unreachable for the next ``down`` requests, then itself again."""

    def __init__(self) -> None:
        super().__init__()
        self.down = 0

    def _maybe_down(self) -> None:
        if self.down:
            self.down -= 1
            raise ConnectionError("[Errno 111] Connection refused")

    def get_schema(self, schema_id):
        self._maybe_down()
        return super().get_schema(schema_id)

    def lookup(self, subject, text):
        self._maybe_down()
        return self.register(subject, text)


def test_a_batch_waits_while_the_registry_is_away_and_is_routed_when_it_is_back() -> None:
    registry = FlakyRegistry()
    router, sent, dead, writer = _router(registry)
    states: list[str] = []
    router.schemas._delay = lambda attempt: states.append(router.progress.report()["state"]) or 0.001
    registry.down = 3  # a new schema id arrives while the registry cannot be reached
    batch = [_consumed(writer, 0, "u1"), _consumed(writer, 1, "u2")]
    assert asyncio.run(router.route_batch(batch)) == batch
    assert dead.written == []
    assert [list(d.event_ids) for d in sent.sent] == [["e0"], ["e1"]]
    assert states == ["waiting"] * 3
    assert router.metrics.counters[("registry", "retried")] == 3
    report = router.progress.report()
    assert (report["state"], report["routed"]) == ("ok", 2)


def test_a_schema_id_the_registry_does_not_have_is_dead_lettered_without_waiting() -> None:
    router, sent, dead, writer = _router(FlakyRegistry())
    unknown = b"\x00\x00\x00\x10\x00" + b"\x00"
    asyncio.run(router.route_batch([_consumed(writer, 0, "u1", value=unknown),
                                    _consumed(writer, 1, "u1")]))
    assert dead.written == [(0, "unknown_schema")]
    assert [list(d.event_ids) for d in sent.sent] == [["e1"]]
    assert router.metrics.counters[("registry", "retried")] == 0


def test_the_subjects_the_worker_writes_are_looked_up_before_the_first_batch() -> None:
    registry = FlakyRegistry()
    codec = AvroCodec(registry, {"d-value": schema_text("delivery")}, auto_register=False)
    progress = RouterProgress(60)
    wait = SchemaWait(codec, ["d-value"], PipelineMetrics(), progress,
                      delays=lambda attempt: 0.001, in_thread=False)
    registry.down = 2
    asyncio.run(wait.ready([]))
    assert registry.down == 0 and registry.ids  # looked up once it answered
    registry.down = 5
    asyncio.run(wait.ready([]))  # known now: not asked again
    assert registry.down == 5


def test_the_wait_runs_the_blocking_client_in_a_thread() -> None:
    registry = FlakyRegistry()
    codec = AvroCodec(registry, {"d-value": schema_text("delivery")}, auto_register=False)
    threads: list[str] = []
    original = registry.lookup

    def lookup(subject, text):
        import threading

        threads.append(threading.current_thread().name)
        return original(subject, text)

    registry.lookup = lookup
    asyncio.run(SchemaWait(codec, ["d-value"], PipelineMetrics(), RouterProgress(60)).ready([]))
    assert threads and threads[0] != "MainThread"


def test_retries_back_off_to_a_ceiling() -> None:
    delay = retry_delays(0.5, 10.0)
    assert [delay(n) for n in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert delay(10_000) == 10.0


def test_a_failure_that_is_not_the_registrys_is_not_retried() -> None:
    class Broken(FakeRegistry):
        def lookup(self, subject, text):
            raise AttributeError("a bug")

    codec = AvroCodec(Broken(), {"d-value": schema_text("delivery")}, auto_register=False)
    wait = SchemaWait(codec, ["d-value"], PipelineMetrics(), RouterProgress(60), in_thread=False)
    with pytest.raises(AttributeError):
        asyncio.run(wait.ready([]))
    assert not isinstance(AttributeError("x"), SchemaUnavailable)


# -- what /health says --------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Queue:
    def __init__(self, size: int) -> None:
        self.size = size

    def qsize(self) -> int:
        return self.size


def test_health_is_ok_while_batches_end_and_waiting_while_a_dependency_is_away() -> None:
    clock = Clock()
    progress = RouterProgress(stall_after_s=30, clock=clock)
    progress.watch(Queue(7))
    progress.batch_started()
    clock.now += 5
    progress.batch_done(40)
    assert progress.report() == {"state": "ok", "reason": "", "routed": 40, "queued": 7,
                                 "since_progress_s": 0.0, "batch_running_s": 0.0}
    progress.waiting("schema registry unavailable (schema id 9): ConnectError")
    clock.now += 120
    report = progress.report()
    assert report["state"] == "waiting"
    assert report["reason"] == "schema registry unavailable (schema id 9): ConnectError (waiting for 120s)"
    progress.waiting_over()
    assert progress.report()["state"] == "ok"


def test_health_says_stalled_for_a_batch_that_does_not_end() -> None:
    clock = Clock()
    progress = RouterProgress(stall_after_s=30, clock=clock)
    progress.batch_started()
    clock.now += 29
    assert progress.report()["state"] == "ok"
    clock.now += 2
    report = progress.report()
    assert report["state"] == "stalled" and "routed for 31s" in report["reason"]


def test_health_says_stalled_after_a_failed_batch_until_the_worker_restarts() -> None:
    """Faust restarts the agent, which routes later batches; the failed batch's events are never
    acknowledged, so their partitions' commits are stuck: still stalled."""
    clock = Clock()
    progress = RouterProgress(stall_after_s=30, clock=clock)
    progress.batch_started()
    progress.batch_failed(RuntimeError("boom"))
    progress.batch_started()
    progress.batch_done(3)
    report = progress.report()
    assert report["state"] == "stalled"
    assert "RuntimeError: boom" in report["reason"] and "restart the worker" in report["reason"]
