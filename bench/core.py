"""The rules alone, in-process, no Kafka: the ceiling any runtime around them can reach on one core.

Runs the max-phase events through the same steps a worker takes — decode, build Event and
Preferences, load the user's state (JSON), route, encode the deliveries, save the state (JSON) —
and flushes due holds every second of wall time, as a worker's tick would. Each step is timed
cumulatively over the same events, so the differences are the cost of each step.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from streams.contracts.avro_codec import AvroCodec
from streams.contracts.delivery_avro import DeliveryEncoder
from streams.contracts.schemas import load_schema
from streams.contracts.topics import CHANNELS
from streams.core.model import Preferences
from streams.core.routing.router import flush_due, next_due_ms, route
from streams.core.routing.state import UserState
from streams.core.routing.validation import decode_event, decode_preferences, validate
from streams.core.settings import RouterSettings
from streams.worker.due_index import DueIndex

STAGES = (
    "decode Avro",
    "+ Event/Preferences objects, validate",
    "+ route (state kept as objects)",
    "+ encode deliveries (Avro)",
    "+ state as JSON (load and save, as a table does)",
)


def measure_core(
    codec: AvroCodec,
    delivery_subject: str,
    keys: Sequence[bytes],
    values: Sequence[bytes],
    prefs: dict[bytes, dict],
    rs: RouterSettings,
    repeat: int = 3,
) -> dict:
    codec.add_subject(delivery_subject, load_schema("delivery"))
    encoder = DeliveryEncoder(codec, {ch: delivery_subject for ch in CHANNELS})
    out: dict = {"events": len(keys), "stages": []}
    for stage, name in enumerate(STAGES):
        best: dict | None = None
        for _ in range(repeat):  # best of a few: the machine may be busy with other work
            run = _stage(stage, codec, encoder, keys, values, prefs, rs)
            if best is None or run["us_per_event"] < best["us_per_event"]:
                best = run
        out["stages"].append({"stage": name, **best})
    return out


def _stage(
    stage: int,
    codec: AvroCodec,
    encoder: DeliveryEncoder,
    keys: Sequence[bytes],
    values: Sequence[bytes],
    prefs: dict[bytes, dict],
    rs: RouterSettings,
) -> dict:
    as_json = stage >= 4
    encode = stage >= 3
    states: dict[bytes, object] = {}  # UserState objects, or their JSON text from stage 4 on
    due = DueIndex()
    deliveries = 0
    last_flush = time.monotonic()
    start = time.perf_counter()

    def load(key: bytes, states: dict = states, as_json: bool = as_json) -> UserState:
        raw = states.get(key)
        if as_json:
            return UserState.from_dict(json.loads(raw) if raw else None)
        return raw if raw is not None else UserState()

    for i, key in enumerate(keys):
        _, record = codec.decode(values[i])
        if stage == 0:
            continue
        event = decode_event(record)
        validate(event, key)
        raw_prefs = prefs.get(key)
        user_prefs: Preferences | None = decode_preferences(raw_prefs) if raw_prefs else None
        if stage == 1:
            continue
        state = load(key)
        now = time.time_ns() // 1_000_000
        result = route(event, user_prefs, state, now, (0, i), rs)
        deliveries += len(result.deliveries)
        if encode:
            for d in result.deliveries:
                encoder.encode(d)
        if result.changed:
            states[key] = json.dumps(state.to_dict()) if as_json else state
            if result.holds_changed:
                due.set(0, key, next_due_ms(state))
        if time.monotonic() - last_flush >= 1.0:  # the tick: flush due holds
            last_flush = time.monotonic()
            for k in due.pop_due(0, now):
                st = load(k)
                p = prefs.get(k)
                flushed = flush_due(st, decode_preferences(p) if p else None, now, rs)
                if encode:
                    for d in flushed.deliveries:
                        encoder.encode(d)
                deliveries += len(flushed.deliveries)
                states[k] = json.dumps(st.to_dict()) if as_json else st
                due.set(0, k, next_due_ms(st))
    elapsed = time.perf_counter() - start
    return {
        "events_per_s": len(keys) / elapsed,
        "us_per_event": 1e6 * elapsed / len(keys),
        "deliveries_per_event": deliveries / len(keys) if stage >= 2 else None,
    }
