"""Local stand-in for the email/SMS/push provider gateways that the Kafka Connect HTTP sink posts to.

It accepts every ``POST /send/{channel}``, records it (also failed attempts, with the status
answered), and lets tests query the record and inject faults: 5xx errors, slow answers, permanent
4xx rejects. Run ``python -m stack.provider_stub --help``.

With ``--tokens-file`` (lines ``<channel>=<token>``; the local stack passes its generated tokens) a
send needs ``Authorization: Bearer <the channel's token>``, as a real gateway would: without it the
answer is 401 and the request is recorded with outcome ``unauthorized``. Recorded requests keep no
``Authorization`` value. The stub logs ids, statuses and outcomes, never addresses, titles or bodies.

HTTP API (all bodies JSON):
  POST   /send/{channel}   record a request; 200 {"accepted": true, ...} unless a fault applies
                           (or 401 without the channel's token, when tokens are required)
  GET    /requests         recorded requests, oldest first; filters: channel, delivery_id, outcome
                           (accepted|error|rejected|unauthorized), duplicate (true|false), since (seq:
                           only later ones), limit (newest N)
  DELETE /requests         forget all requests (and the delivery ids seen)
  POST   /faults           add a fault: {"channel": "email"|"*", "mode": "error"|"slow"|"reject",
                           "status": 503, "delay_ms": 2000, "duration_s": 20, "match": "substr",
                           "times": 3}; duration_s and times are optional limits (none: until cleared).
                           Receipt modes "bounce", "fail" (with an optional "reason") and "open":
                           the send is accepted and its receipt says BOUNCED, FAILED, or DELIVERED
                           then OPENED (stack/stub_receipts.py)
  GET    /faults           active faults
  DELETE /faults           clear faults (all, or ?channel=)
  GET    /receipts         receipts reported to the webhook (?delivery_id=&status=), with outcome
  GET    /health           liveness plus counters

With --receipts-url (and --receipts-secret-file) every accepted send is followed by a signed
receipt to that webhook, as a real gateway reports delivery status.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import itertools
import json
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from inbox.secret_files import SecretMissing, read_secrets
from stack.stub_receipts import RECEIPT_MODES, ReceiptReporter, delivery_refs, receipts_for

log = logging.getLogger("notipipe.provider_stub")

DEFAULT_PORT = 8090
PORT_ENV = "NOTIPIPE_STUB_PORT"
MODES = ("error", "slow", "reject", *RECEIPT_MODES)
DEFAULT_STATUS = {"error": 503, "reject": 400, "slow": 200, **{mode: 200 for mode in RECEIPT_MODES}}
DEFAULT_DELAY_MS = 2000
DEFAULT_MAX_REQUESTS = 100_000

Clock = Callable[[], float]


@dataclass
class Fault:
    """One injected fault; it applies to requests of its channel ('*': all) whose raw body
    contains ``match`` (if set), until ``expires_at`` (monotonic clock) or ``times`` uses."""

    id: int
    channel: str
    mode: str
    status: int
    delay_ms: int
    match: str | None
    duration_s: float | None
    times: int | None
    created_at: float
    expires_at: float | None
    used: int = 0
    reason: str | None = None  # a receipt mode's reason (bounce, fail)

    def active(self, now: float) -> bool:
        if self.expires_at is not None and now >= self.expires_at:
            return False
        return self.times is None or self.used < self.times

    def applies(self, channel: str, raw: str, now: float) -> bool:
        if not self.active(now) or self.channel not in ("*", channel):
            return False
        return self.match is None or self.match in raw

    def to_json(self, now: float) -> dict[str, Any]:
        out = asdict(self)
        del out["created_at"], out["expires_at"]
        out["remaining_s"] = None if self.expires_at is None else round(max(0.0, self.expires_at - now), 3)
        return out


@dataclass
class StubState:
    """Everything the stub remembers; ``clock`` is injectable so tests can expire faults."""

    clock: Clock = time.monotonic
    max_requests: int = DEFAULT_MAX_REQUESTS
    # channel -> the bearer token a send must carry; None: no token required
    tokens: dict[str, str] | None = None
    requests: deque[dict[str, Any]] = field(init=False)
    faults: list[Fault] = field(default_factory=list)
    # (channel, delivery_id) -> number of accepted requests that carried it
    accepted_ids: dict[tuple[str, str], int] = field(default_factory=dict)
    attempts: dict[tuple[str, str], int] = field(default_factory=dict)
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _fault_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.requests = deque(maxlen=self.max_requests)

    def active_faults(self) -> list[Fault]:
        now = self.clock()
        self.faults = [f for f in self.faults if f.active(now)]
        return self.faults

    def add_fault(self, spec: dict[str, Any]) -> Fault:
        mode = spec.get("mode")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        channel = spec.get("channel", "*")
        if not isinstance(channel, str) or not channel:
            raise ValueError("channel must be a channel name or '*'")
        status = int(spec.get("status", DEFAULT_STATUS[mode]))
        if mode == "error" and not 500 <= status <= 599:
            raise ValueError("an 'error' fault answers a 5xx status")
        if mode == "reject" and not 400 <= status <= 499:
            raise ValueError("a 'reject' fault answers a 4xx status")
        if mode in RECEIPT_MODES and status != 200:
            raise ValueError("a receipt mode accepts the send: its status is 200")
        if not 100 <= status <= 599:
            raise ValueError("status must be an HTTP status code")
        reason = spec.get("reason")
        if reason is not None and (mode not in ("bounce", "fail") or not isinstance(reason, str)):
            raise ValueError("reason is a string, for the bounce and fail modes")
        delay_ms = int(spec.get("delay_ms", DEFAULT_DELAY_MS if mode == "slow" else 0))
        duration = spec.get("duration_s")
        duration_s = None if duration is None else float(duration)
        times = spec.get("times")
        times_n = None if times is None else int(times)
        match = spec.get("match")
        bad_limits = (duration_s is not None and duration_s <= 0) or (times_n is not None and times_n < 1)
        if delay_ms < 0 or bad_limits:
            raise ValueError("delay_ms must be >= 0, duration_s > 0 and times >= 1")
        if match is not None and (not isinstance(match, str) or not match):
            raise ValueError("match must be a non-empty string")
        now = self.clock()
        fault = Fault(
            id=next(self._fault_ids),
            channel=channel,
            mode=mode,
            status=status,
            delay_ms=delay_ms,
            match=match,
            duration_s=duration_s,
            times=times_n,
            created_at=now,
            expires_at=None if duration_s is None else now + duration_s,
            reason=reason,
        )
        self.faults.append(fault)
        return fault

    def clear_faults(self, channel: str | None = None) -> int:
        before = len(self.faults)
        self.faults = [] if channel is None else [f for f in self.faults if f.channel != channel]
        return before - len(self.faults)

    def clear_requests(self) -> int:
        n = len(self.requests)
        self.requests.clear()
        self.accepted_ids.clear()
        self.attempts.clear()
        return n

    def next_seq(self) -> int:
        return next(self._seq)

    def authorized(self, channel: str, authorization: str | None) -> bool:
        """Whether a send to `channel` carrying this Authorization header may go on."""
        if self.tokens is None:
            return True
        token = self.tokens.get(channel)
        if token is None or authorization is None:
            return False
        return hmac.compare_digest(authorization.encode(), f"Bearer {token}".encode())


def read_tokens(path: Path) -> dict[str, str]:
    """`<channel>=<token>` lines (blank lines and # comments ignored)."""
    tokens: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        channel, sep, token = line.partition("=")
        if not sep or not channel.strip() or not token.strip():
            raise ValueError(f"{path}:{number}: expected <channel>=<token>")
        tokens[channel.strip()] = token.strip()
    return tokens


def recorded_headers(headers: Any) -> dict[str, str]:
    """Request headers as recorded: credentials only as whether they were there."""
    return {name: "(redacted)" if name.lower() == "authorization" else value
            for name, value in headers.items()}


def parse_body(raw: str) -> Any:
    """The JSON body, or None when it is not JSON. A JSON string holding JSON is unwrapped once."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    if isinstance(body, str):
        try:
            return json.loads(body)
        except ValueError:
            return body
    return body


def delivery_ids(body: Any) -> list[str]:
    """delivery_id(s) carried by a body: one object, a JsonConverter envelope {"schema", "payload"},
    or a list of those (a grouped request)."""
    items: Iterable[Any] = body if isinstance(body, list) else [body]
    ids: list[str] = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("payload"), dict) and "schema" in item:
            item = item["payload"]
        if isinstance(item, dict) and item.get("delivery_id") is not None:
            ids.append(str(item["delivery_id"]))
    return ids


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda o: json.dumps(o, default=str))


STATE_KEY = web.AppKey("state", StubState)
REPORTER_KEY = web.AppKey("receipts", ReceiptReporter)


async def handle_send(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    channel = request.match_info["channel"]
    received_at = _now_iso()
    raw = (await request.read()).decode("utf-8", errors="replace")
    body = parse_body(raw)
    ids = delivery_ids(body)
    if not state.authorized(channel, request.headers.get("Authorization")):
        return _unauthorized(state, request, channel, received_at, body, raw, ids)

    # Faults: every matching 'slow' adds its delay; the first matching reject/error sets the answer.
    now = state.clock()
    delay_ms = 0
    failing: Fault | None = None
    receipt_fault: Fault | None = None
    for fault in state.active_faults():
        if not fault.applies(channel, raw, now):
            continue
        if fault.mode in RECEIPT_MODES:
            if receipt_fault is None:
                receipt_fault = fault
                fault.used += 1
        elif fault.mode == "slow":
            delay_ms += fault.delay_ms
            fault.used += 1
        elif failing is None:
            failing = fault
            fault.used += 1
    cancelled: asyncio.CancelledError | None = None
    if delay_ms:
        try:
            await asyncio.sleep(delay_ms / 1000)
        except asyncio.CancelledError as exc:  # servers that cancel handlers when the client leaves
            cancelled = exc
    # A client that timed out meanwhile never sees the answer, but the "provider" has acted on it,
    # so it is recorded as accepted and a retry of it is flagged duplicate, as a real provider sees it.
    transport = request.transport
    client_gone = cancelled is not None or transport is None or transport.is_closing()

    status = failing.status if failing else 200
    outcome = "accepted" if failing is None else ("rejected" if failing.mode == "reject" else "error")
    attempt = 0
    duplicate_ids: list[str] = []
    for did in ids:
        key = (channel, did)
        state.attempts[key] = state.attempts.get(key, 0) + 1
        attempt = max(attempt, state.attempts[key])
        if outcome == "accepted":
            if state.accepted_ids.get(key):
                duplicate_ids.append(did)
            state.accepted_ids[key] = state.accepted_ids.get(key, 0) + 1

    entry = {
        "seq": state.next_seq(),
        "channel": channel,
        "received_at": received_at,
        "method": request.method,
        "path": request.path_qs,
        "headers": recorded_headers(request.headers),
        "body": body,
        "raw": None if body is not None else raw,
        "delivery_id": ids[0] if ids else None,
        "delivery_ids": ids,
        "attempt": attempt,
        "duplicate": bool(duplicate_ids),
        "duplicate_ids": duplicate_ids,
        "status": status,
        "outcome": outcome,
        "fault": None if failing is None else {"id": failing.id, "mode": failing.mode},
        "delay_ms": delay_ms,
        "client_gone": client_gone,
    }
    state.requests.append(entry)
    log.info(
        "send",
        extra={"fields": {k: entry[k] for k in ("seq", "channel", "delivery_id", "status", "outcome",
                                                 "attempt", "duplicate", "delay_ms", "client_gone")}},
    )
    reporter = request.app.get(REPORTER_KEY)
    if reporter is not None and outcome == "accepted":
        reporter.report(receipts_for(delivery_refs(body, channel),
                                     receipt_fault.mode if receipt_fault else None,
                                     receipt_fault.reason if receipt_fault else None,
                                     time.time_ns() // 1_000_000))
    if cancelled is not None:
        raise cancelled
    answer = {"seq": entry["seq"], "accepted": failing is None, "delivery_id": entry["delivery_id"],
              "duplicate": entry["duplicate"]}
    if failing is not None:
        answer["error"] = f"injected {failing.mode} fault {failing.id}"
    return _json(answer, status=status)


def _unauthorized(state: StubState, request: web.Request, channel: str, received_at: str, body: Any,
                  raw: str, ids: list[str]) -> web.Response:
    """Refuse a send without the channel's token: recorded, but no attempt at delivering it."""
    entry = {
        "seq": state.next_seq(), "channel": channel, "received_at": received_at,
        "method": request.method, "path": request.path_qs, "headers": recorded_headers(request.headers),
        "body": body, "raw": None if body is not None else raw,
        "delivery_id": ids[0] if ids else None, "delivery_ids": ids, "attempt": 0,
        "duplicate": False, "duplicate_ids": [], "status": 401, "outcome": "unauthorized",
        "fault": None, "delay_ms": 0, "client_gone": False,
    }
    state.requests.append(entry)
    log.info("send refused", extra={"fields": {
        "seq": entry["seq"], "channel": channel, "delivery_id": entry["delivery_id"], "status": 401,
        "outcome": "unauthorized", "had_authorization": "Authorization" in request.headers}})
    return web.json_response({"seq": entry["seq"], "accepted": False, "delivery_id": entry["delivery_id"],
                              "error": f"missing or wrong bearer token for channel {channel}"},
                             status=401, headers={"WWW-Authenticate": 'Bearer realm="notipipe-stub"'})


def _flag(value: str) -> bool:
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise web.HTTPBadRequest(text=json.dumps({"error": f"not a boolean: {value}"}),
                             content_type="application/json")


async def handle_requests(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    q = request.query
    rows: Iterable[dict[str, Any]] = state.requests
    if "since" in q:
        try:
            since = int(q["since"])
        except ValueError:
            return _json({"error": "since must be an integer (a request's seq)"}, status=400)
        rows = [r for r in rows if r["seq"] > since]
    if "channel" in q:
        rows = [r for r in rows if r["channel"] == q["channel"]]
    if "delivery_id" in q:
        rows = [r for r in rows if q["delivery_id"] in r["delivery_ids"]]
    if "outcome" in q:
        rows = [r for r in rows if r["outcome"] == q["outcome"]]
    if "duplicate" in q:
        want = _flag(q["duplicate"])
        rows = [r for r in rows if r["duplicate"] == want]
    rows = list(rows)
    if "limit" in q:
        try:
            limit = int(q["limit"])
        except ValueError:
            return _json({"error": "limit must be an integer"}, status=400)
        rows = rows[-limit:] if limit > 0 else []
    return _json({"count": len(rows), "requests": rows})


async def handle_clear_requests(request: web.Request) -> web.Response:
    n = request.app[STATE_KEY].clear_requests()
    log.info("requests cleared", extra={"fields": {"cleared": n}})
    return _json({"cleared": n})


async def handle_add_fault(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        spec = await request.json()
        if not isinstance(spec, dict):
            raise ValueError("body must be a JSON object")
        fault = state.add_fault(spec)
    except (ValueError, TypeError) as exc:
        return _json({"error": str(exc)}, status=400)
    out = fault.to_json(state.clock())
    # `match` is a piece of request bodies (it could be an address): logged only as set or not.
    log.info("fault added", extra={"fields": {**out, "match": out["match"] is not None}})
    return _json(out, status=201)


async def handle_list_faults(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    now = state.clock()
    return _json({"faults": [f.to_json(now) for f in state.active_faults()]})


async def handle_clear_faults(request: web.Request) -> web.Response:
    n = request.app[STATE_KEY].clear_faults(request.query.get("channel"))
    log.info("faults cleared", extra={"fields": {"cleared": n}})
    return _json({"cleared": n})


async def handle_receipts(request: web.Request) -> web.Response:
    reporter = request.app.get(REPORTER_KEY)
    rows = [] if reporter is None else reporter.listed(request.query.get("delivery_id"),
                                                       request.query.get("status"))
    return _json({"enabled": reporter is not None, "count": len(rows), "receipts": rows})


async def handle_health(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    outcomes: dict[str, int] = {}
    for r in state.requests:
        outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
    return _json({"status": "ok", "requests": len(state.requests), "outcomes": outcomes,
                  "faults": len(state.active_faults())})


def create_app(state: StubState | None = None, reporter: ReceiptReporter | None = None) -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[STATE_KEY] = state or StubState()
    if reporter is not None:
        app[REPORTER_KEY] = reporter

        async def reporting(_: web.Application):  # noqa: ANN202 - aiohttp cleanup context
            await reporter.start()
            yield
            await reporter.stop()
        app.cleanup_ctx.append(reporting)
    app.router.add_post("/send/{channel}", handle_send)
    app.router.add_get("/requests", handle_requests)
    app.router.add_delete("/requests", handle_clear_requests)
    app.router.add_post("/faults", handle_add_fault)
    app.router.add_get("/faults", handle_list_faults)
    app.router.add_delete("/faults", handle_clear_faults)
    app.router.add_get("/receipts", handle_receipts)
    app.router.add_get("/health", handle_health)
    return app


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, event and any ``extra={"fields": {...}}``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        out.update(getattr(record, "fields", {}))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonLineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def _default_port() -> int:
    value = os.environ.get(PORT_ENV)
    return int(value) if value else DEFAULT_PORT


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stack.provider_stub",
        description="Stand-in for the email/SMS/push provider gateways: records what the Kafka Connect "
        "HTTP sink posts to /send/{channel} and injects faults (5xx, slow, 4xx) on demand.",
        epilog="Endpoints: POST /send/{channel}; GET|DELETE /requests (?channel=&delivery_id=&outcome="
        "&duplicate=&limit=); POST|GET|DELETE /faults; GET /health. Example fault: curl -XPOST "
        "localhost:8090/faults -d '{\"channel\":\"email\",\"mode\":\"error\",\"status\":503,"
        "\"duration_s\":20}'. Logs are JSON lines on stdout.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--port",
        type=int,
        default=_default_port(),
        help=f"port to listen on (default: ${PORT_ENV} or {DEFAULT_PORT}; now %(default)s)",
    )
    parser.add_argument(
        "--max-requests",
        type=int,
        default=DEFAULT_MAX_REQUESTS,
        help="keep at most this many recorded requests, oldest dropped first (default: %(default)s)",
    )
    parser.add_argument("--gateway", default="stub",
                        help="the gateway name receipts are reported as (default: %(default)s)")
    parser.add_argument("--receipts-url", metavar="URL",
                        help="report a receipt for each accepted send to this webhook (the inbox "
                             "service's /v1/receipts/<gateway>); unset: no receipts")
    parser.add_argument("--receipts-secret-file", type=Path, metavar="FILE",
                        help="the gateway's signing secret (its first line); needed with --receipts-url")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                        help="log level (default: %(default)s)")
    parser.add_argument("--tokens-file", type=Path, metavar="FILE",
                        help="require 'Authorization: Bearer <token>' on sends: FILE has one "
                             "<channel>=<token> line per channel (a channel not listed is refused); "
                             "default: no token required")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.log_level)
    tokens = None
    if args.tokens_file is not None:
        try:
            tokens = read_tokens(args.tokens_file)
        except (OSError, ValueError) as exc:
            parser.error(f"--tokens-file: {exc}")
    reporter = None
    if args.receipts_url:
        if args.receipts_secret_file is None:
            parser.error("--receipts-url needs --receipts-secret-file")
        try:
            secret = read_secrets(args.receipts_secret_file.parent, args.receipts_secret_file.name)[0]
        except SecretMissing as exc:
            parser.error(str(exc))
        reporter = ReceiptReporter(args.receipts_url, secret)
    app = create_app(StubState(max_requests=args.max_requests, tokens=tokens), reporter)
    log.info("listening", extra={"fields": {"host": args.host, "port": args.port,
                                            "tokens_required": sorted(tokens) if tokens else False}})
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
