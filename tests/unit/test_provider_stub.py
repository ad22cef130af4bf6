"""Unit tests for the provider gateway stub (stack/provider_stub.py), on aiohttp's test client."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import ClientTimeout
from aiohttp.test_utils import TestClient, TestServer

from stack.provider_stub import (
    JsonLineFormatter,
    StubState,
    build_parser,
    create_app,
    delivery_ids,
    main,
    parse_body,
)
from tests.waiting import wait_for_async


class FakeClock:
    """Monotonic clock that tests move by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run_async(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test on a fresh event loop (no pytest plugin needed)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))

    return wrapper


@asynccontextmanager
async def stub(state: StubState | None = None) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(state))) as client:
        yield client


async def send(client: TestClient, channel: str, body: Any, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, str) else json.dumps(body)
    resp = await client.post(f"/send/{channel}", data=data, **kwargs)
    return resp.status, await resp.json()


async def recorded(client: TestClient, **query: str) -> list[dict[str, Any]]:
    resp = await client.get("/requests", params=query)
    assert resp.status == 200
    out = await resp.json()
    assert out["count"] == len(out["requests"])
    return out["requests"]


async def add_fault(client: TestClient, spec: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post("/faults", json=spec)
    assert resp.status == 201, await resp.text()
    return await resp.json()


DELIVERY = {"delivery_id": "d-1", "user_id": "u1", "channel": "email", "address": "a@example.org",
            "title": 'Hi "there"', "body": "line1\nline2"}


@run_async
async def test_send_is_recorded_with_headers_body_and_delivery_id() -> None:
    async with stub() as client:
        headers = {"Content-Type": "application/json", "X-Notipipe-Sink": "http-sink"}
        status, answer = await send(client, "email", DELIVERY, headers=headers)
        assert status == 200
        assert answer == {"seq": 1, "accepted": True, "delivery_id": "d-1", "duplicate": False}
        [req] = await recorded(client)
        assert req["channel"] == "email"
        assert req["method"] == "POST" and req["path"] == "/send/email"
        assert req["headers"]["X-Notipipe-Sink"] == "http-sink"
        assert req["body"] == DELIVERY and req["raw"] is None
        assert req["delivery_id"] == "d-1" and req["delivery_ids"] == ["d-1"]
        assert (req["status"], req["outcome"], req["fault"]) == (200, "accepted", None)
        assert (req["attempt"], req["duplicate"], req["client_gone"]) == (1, False, False)
        assert req["received_at"].endswith("Z") and "T" in req["received_at"]


@run_async
async def test_query_filters_and_limit() -> None:
    async with stub() as client:
        for i in range(5):
            await send(client, "email", {"delivery_id": f"e-{i}"})
        await send(client, "sms", {"delivery_id": "s-1"})
        await send(client, "push", {"delivery_id": "e-1"})

        assert len(await recorded(client)) == 7
        assert [r["delivery_id"] for r in await recorded(client, channel="sms")] == ["s-1"]
        assert [r["channel"] for r in await recorded(client, delivery_id="e-1")] == ["email", "push"]
        assert [r["channel"] for r in await recorded(client, delivery_id="e-1", channel="push")] == ["push"]
        # limit keeps the newest N, oldest first
        newest = await recorded(client, channel="email", limit="2")
        assert [r["delivery_id"] for r in newest] == ["e-3", "e-4"]
        assert await recorded(client, limit="0") == []
        assert len(await recorded(client, outcome="accepted")) == 7
        assert await recorded(client, outcome="error") == []

        # since: only requests after that seq (a reader that has the earlier ones)
        assert [r["seq"] for r in await recorded(client, since="5")] == [6, 7]
        assert [r["delivery_id"] for r in await recorded(client, since="5", channel="sms")] == ["s-1"]

        resp = await client.get("/requests", params={"limit": "many"})
        assert resp.status == 400
        resp = await client.get("/requests", params={"since": "then"})
        assert resp.status == 400
        resp = await client.get("/requests", params={"duplicate": "maybe"})
        assert resp.status == 400


@run_async
async def test_repeated_delivery_id_is_recorded_again_and_flagged_duplicate() -> None:
    async with stub() as client:
        assert (await send(client, "email", DELIVERY))[1]["duplicate"] is False
        assert (await send(client, "email", DELIVERY))[1]["duplicate"] is True
        await send(client, "sms", DELIVERY)  # same id on another channel is a different delivery

        reqs = await recorded(client, delivery_id="d-1")
        assert [(r["channel"], r["attempt"], r["duplicate"]) for r in reqs] == [
            ("email", 1, False), ("email", 2, True), ("sms", 1, False)]
        assert len(await recorded(client, duplicate="true")) == 1
        assert len(await recorded(client, duplicate="false")) == 2


@run_async
async def test_body_shapes() -> None:
    async with stub() as client:
        await send(client, "email", "not json at all")
        envelope = {"schema": {"type": "struct", "fields": []}, "payload": {"delivery_id": "env-1"}}
        await send(client, "email", envelope)
        await send(client, "email", [{"delivery_id": "b-1"}, {"delivery_id": "b-2"}])  # grouped request
        await send(client, "email", json.dumps(json.dumps({"delivery_id": "str-1"})))  # JSON string of JSON
        raw, env, batch, doubled = await recorded(client)
        assert raw["body"] is None and raw["raw"] == "not json at all" and raw["delivery_id"] is None
        assert env["delivery_id"] == "env-1"
        assert batch["delivery_ids"] == ["b-1", "b-2"] and batch["delivery_id"] == "b-1"
        assert doubled["body"] == {"delivery_id": "str-1"} and doubled["delivery_id"] == "str-1"
        assert len(await recorded(client, delivery_id="b-2")) == 1


def test_parse_body_and_delivery_ids_helpers() -> None:
    assert parse_body('{"a": 1}') == {"a": 1}
    assert parse_body('"plain"') == "plain"
    assert parse_body("{broken") is None
    assert delivery_ids({"delivery_id": 7}) == ["7"]
    assert delivery_ids({"other": 1}) == []
    assert delivery_ids(None) == []
    mixed = [{"delivery_id": "a"}, "x", {"schema": {}, "payload": {"delivery_id": "b"}}]
    assert delivery_ids(mixed) == ["a", "b"]


@run_async
async def test_error_fault_answers_5xx_and_failed_attempts_are_recorded() -> None:
    async with stub() as client:
        fault = await add_fault(client, {"channel": "email", "mode": "error", "status": 503})
        assert fault["status"] == 503 and fault["remaining_s"] is None

        status, answer = await send(client, "email", DELIVERY)
        assert status == 503 and answer["accepted"] is False and "error" in answer
        assert (await send(client, "sms", DELIVERY))[0] == 200  # other channels unaffected
        status, _ = await send(client, "email", DELIVERY)
        assert status == 503

        resp = await client.delete("/faults")
        assert (await resp.json())["cleared"] == 1
        status, answer = await send(client, "email", DELIVERY)
        assert status == 200 and answer["duplicate"] is False  # failed attempts never count as accepted

        reqs = await recorded(client, channel="email")
        assert [(r["status"], r["outcome"], r["attempt"]) for r in reqs] == [
            (503, "error", 1), (503, "error", 2), (200, "accepted", 3)]
        assert reqs[0]["fault"] == {"id": fault["id"], "mode": "error"}
        assert len(await recorded(client, outcome="error")) == 2


@run_async
async def test_reject_fault_matches_body_substring_on_any_channel() -> None:
    async with stub() as client:
        await add_fault(client, {"channel": "*", "mode": "reject", "status": 422, "match": "bad@example.org"})
        bad = {"delivery_id": "d-bad", "address": "bad@example.org"}
        good = {"delivery_id": "d-good", "address": "good@example.org"}
        for channel in ("email", "sms"):
            assert (await send(client, channel, bad))[0] == 422
            assert (await send(client, channel, good))[0] == 200
        # permanent: still rejected later
        assert (await send(client, "email", bad))[0] == 422
        rejected = await recorded(client, outcome="rejected")
        assert {r["delivery_id"] for r in rejected} == {"d-bad"} and len(rejected) == 3
        assert all(r["status"] == 422 for r in rejected)


@run_async
async def test_default_statuses_per_mode() -> None:
    async with stub() as client:
        assert (await add_fault(client, {"mode": "error"}))["status"] == 503
        assert (await add_fault(client, {"mode": "reject", "channel": "sms"}))["status"] == 400
        slow = await add_fault(client, {"mode": "slow", "channel": "push"})
        assert (slow["status"], slow["delay_ms"], slow["channel"]) == (200, 2000, "push")
        faults = (await (await client.get("/faults")).json())["faults"]
        assert [f["mode"] for f in faults] == ["error", "reject", "slow"]
        # the first failing fault that matches decides the answer
        assert (await send(client, "sms", DELIVERY))[0] == 503


@run_async
async def test_slow_fault_delays_the_answer() -> None:
    state = StubState()
    async with stub(state) as client:
        await add_fault(client, {"channel": "email", "mode": "slow", "delay_ms": 2000, "times": 1})
        answered: list[str] = []

        async def post(delivery_id: str) -> None:
            status, _ = await send(client, "email", {**DELIVERY, "delivery_id": delivery_id})
            assert status == 200
            answered.append(delivery_id)

        slow = asyncio.create_task(post("slow"))
        await wait_for_async(lambda: not state.active_faults(), 5, "the slow request taken in")
        await post("fast")  # 'times' used up: answered while the first one still waits
        await slow
        assert answered == ["fast", "slow"]
        first, second = await recorded(client)  # recorded when answered
        assert [(r["delivery_id"], r["delay_ms"]) for r in (first, second)] == [
            ("fast", 0), ("slow", 2000)]


@run_async
async def test_client_that_timed_out_is_flagged_and_its_retry_is_a_duplicate() -> None:
    state = StubState()
    async with stub(state) as client:
        await add_fault(client, {"mode": "slow", "delay_ms": 300, "times": 1})
        with pytest.raises(asyncio.TimeoutError):
            await client.post("/send/email", json=DELIVERY, timeout=ClientTimeout(total=0.05))
        assert (await send(client, "email", DELIVERY))[0] == 200  # the sink's retry
        # A server that does not cancel handlers finishes the slow one after its delay.
        await wait_for_async(lambda: len(state.requests) == 2, 5, "the abandoned attempt recorded")
        reqs = await recorded(client)
        # the abandoned attempt counts as accepted (the provider acted on it), so exactly one of the
        # two is a duplicate: whichever was recorded second
        assert sorted(r["client_gone"] for r in reqs) == [False, True]
        assert [r["outcome"] for r in reqs] == ["accepted", "accepted"]
        assert [r["duplicate"] for r in reqs] == [False, True]


@run_async
async def test_slow_plus_error_delays_then_fails() -> None:
    async with stub() as client:
        await add_fault(client, {"mode": "slow", "delay_ms": 50})
        await add_fault(client, {"mode": "error", "status": 500})
        status, _ = await send(client, "email", DELIVERY)
        [req] = await recorded(client)
        assert status == 500 and (req["delay_ms"], req["outcome"]) == (50, "error")


@run_async
async def test_fault_expires_after_duration() -> None:
    clock = FakeClock()
    async with stub(StubState(clock=clock)) as client:
        spec = {"channel": "email", "mode": "error", "status": 502, "duration_s": 20}
        fault = await add_fault(client, spec)
        assert fault["remaining_s"] == 20
        assert (await send(client, "email", DELIVERY))[0] == 502
        clock.now += 19.9
        assert (await send(client, "email", DELIVERY))[0] == 502
        faults = (await (await client.get("/faults")).json())["faults"]
        assert faults[0]["remaining_s"] == pytest.approx(0.1)
        clock.now += 0.2
        assert (await send(client, "email", DELIVERY))[0] == 200
        assert (await (await client.get("/faults")).json())["faults"] == []
        assert [r["status"] for r in await recorded(client)] == [502, 502, 200]


@run_async
async def test_fault_limited_by_times() -> None:
    async with stub() as client:
        await add_fault(client, {"mode": "error", "times": 2})
        statuses = [(await send(client, "email", DELIVERY))[0] for _ in range(4)]
        assert statuses == [503, 503, 200, 200]
        reqs = await recorded(client)
        assert [r["attempt"] for r in reqs] == [1, 2, 3, 4]
        assert [r["duplicate"] for r in reqs] == [False, False, False, True]


@pytest.mark.parametrize(
    "spec",
    [
        {"mode": "explode"},
        {"channel": "email"},
        {"mode": "error", "status": 404},
        {"mode": "reject", "status": 503},
        {"mode": "slow", "status": 99},
        {"mode": "slow", "delay_ms": -1},
        {"mode": "error", "duration_s": 0},
        {"mode": "error", "times": 0},
        {"mode": "error", "match": ""},
        {"mode": "error", "channel": ""},
        {"mode": "error", "status": "many"},
        ["mode", "error"],
    ],
)
def test_invalid_faults_are_refused(spec: Any) -> None:
    async def check() -> None:
        async with stub() as client:
            resp = await client.post("/faults", json=spec)
            assert resp.status == 400
            assert "error" in await resp.json()
            assert (await (await client.get("/faults")).json())["faults"] == []

    asyncio.run(check())


@run_async
async def test_fault_body_must_be_json() -> None:
    async with stub() as client:
        resp = await client.post("/faults", data="{nope")
        assert resp.status == 400


@run_async
async def test_clear_faults_by_channel() -> None:
    async with stub() as client:
        await add_fault(client, {"channel": "email", "mode": "error"})
        await add_fault(client, {"channel": "sms", "mode": "error"})
        resp = await client.delete("/faults", params={"channel": "email"})
        assert (await resp.json())["cleared"] == 1
        assert (await send(client, "email", DELIVERY))[0] == 200
        assert (await send(client, "sms", DELIVERY))[0] == 503


@run_async
async def test_delete_requests_clears_records_and_duplicate_memory() -> None:
    async with stub() as client:
        await send(client, "email", DELIVERY)
        await send(client, "email", DELIVERY)
        resp = await client.delete("/requests")
        assert (await resp.json())["cleared"] == 2
        assert await recorded(client) == []
        _, answer = await send(client, "email", DELIVERY)
        assert answer["duplicate"] is False and answer["seq"] == 3  # seq keeps growing


@run_async
async def test_max_requests_keeps_the_newest() -> None:
    async with stub(StubState(max_requests=3)) as client:
        for i in range(5):
            await send(client, "email", {"delivery_id": f"e-{i}"})
        assert [r["delivery_id"] for r in await recorded(client)] == ["e-2", "e-3", "e-4"]


@run_async
async def test_health_reports_counters() -> None:
    async with stub() as client:
        await add_fault(client, {"mode": "reject", "match": "bad"})
        await send(client, "email", {"delivery_id": "ok"})
        await send(client, "email", {"delivery_id": "bad"})
        resp = await client.get("/health")
        assert resp.status == 200
        assert await resp.json() == {"status": "ok", "requests": 2,
                                     "outcomes": {"accepted": 1, "rejected": 1}, "faults": 1}


def test_port_defaults_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIPIPE_STUB_PORT", raising=False)
    args = build_parser().parse_args([])
    assert (args.host, args.port) == ("127.0.0.1", 8090)
    monkeypatch.setenv("NOTIPIPE_STUB_PORT", "18090")
    assert build_parser().parse_args([]).port == 18090
    assert build_parser().parse_args(["--port", "9000", "--host", "0.0.0.0"]).port == 9000


def test_main_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--port" in out and "NOTIPIPE_STUB_PORT" in out and "/send/{channel}" in out


def test_json_line_formatter() -> None:
    record = logging.LogRecord("notipipe.provider_stub", logging.INFO, __file__, 1, "send", None, None)
    record.fields = {"channel": "email", "status": 200}
    line = json.loads(JsonLineFormatter().format(record))
    assert line["event"] == "send" and line["level"] == "info"
    assert (line["channel"], line["status"]) == ("email", 200)


@run_async
async def test_with_tokens_a_send_needs_its_channels_bearer_token() -> None:
    state = StubState(tokens={"email": "t-email", "sms": "t-sms"})
    async with stub(state) as client:
        assert (await send(client, "email", {"delivery_id": "d1"}))[0] == 401
        assert (await send(client, "email", {"delivery_id": "d1"},
                           headers={"Authorization": "Bearer t-sms"}))[0] == 401
        assert (await send(client, "push", {"delivery_id": "d1"},
                           headers={"Authorization": "Bearer t-email"}))[0] == 401, "no token: refused"
        status, answer = await send(client, "email", {"delivery_id": "d1"},
                                    headers={"Authorization": "Bearer t-email"})
        assert status == 200 and answer["accepted"] and not answer["duplicate"]
        rows = (await (await client.get("/requests")).json())["requests"]
    assert [r["outcome"] for r in rows] == ["unauthorized"] * 3 + ["accepted"]
    assert [r["attempt"] for r in rows] == [0, 0, 0, 1], "refused sends are no delivery attempts"
    assert rows[1]["headers"]["Authorization"] == "(redacted)"
    assert rows[3]["headers"]["Authorization"] == "(redacted)"


def test_tokens_file_is_read_and_checked(tmp_path) -> None:
    from stack.provider_stub import read_tokens

    good = tmp_path / "tokens"
    good.write_text("# gateway tokens\nemail=abc\n\nsms = def \n")
    assert read_tokens(good) == {"email": "abc", "sms": "def"}
    bad = tmp_path / "bad"
    bad.write_text("email\n")
    with pytest.raises(ValueError, match="bad:1"):
        read_tokens(bad)


def test_a_fault_match_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def add() -> None:
        async with stub() as client:
            resp = await client.post("/faults", json={"mode": "reject", "match": "alice@example.com"})
            assert resp.status == 201

    with caplog.at_level(logging.INFO, logger="notipipe.provider_stub"):
        asyncio.run(add())
    logged = [JsonLineFormatter().format(r) for r in caplog.records]
    assert logged and not any("alice@example.com" in line for line in logged)
