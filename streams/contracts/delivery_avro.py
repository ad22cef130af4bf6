"""Delivery records straight to Avro bytes: no dict per record, no generic schema walk.

The router emits 1–2 deliveries per event, and fastavro's generic writer (with the dict built
for it) was the largest single cost in the worker's profile. This encoder writes byte for byte
what fastavro writes for ``schemas/delivery.avsc`` (unit-tested against it), about twice as fast.

It knows that one schema shape only. ``supports`` compares a schema's parsing canonical form with
the shape it was written for; for anything else (a changed delivery.avsc) callers keep using the
generic codec, so a schema change can make deliveries slower but never wrong.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from fastavro.schema import to_parsing_canonical_form

from streams.contracts.avro_codec import AvroCodec, EncodeError, wire_header
from streams.core.model import Delivery

log = logging.getLogger("notipipe.deliveries")

# sha256 of the parsing canonical form of the Delivery schema this encoder writes.
SUPPORTED_SHAPE = "383c547c67f0634839c2d42094d29d0e5e2bc33740bb35f7b9432eead4d5d12d"

# Enum symbols in schema order; Avro writes an enum as the symbol's index.
_CHANNEL = {s: i for i, s in enumerate(("EMAIL", "SMS", "PUSH", "IN_APP"))}
_KIND = {s: i for i, s in enumerate(("SINGLE", "DIGEST"))}
_PRIORITY = {s: i for i, s in enumerate(("LOW", "NORMAL", "HIGH", "CRITICAL"))}
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


def supports(schema: str | dict[str, Any]) -> bool:
    """Whether ``schema`` has exactly the shape this encoder writes."""
    as_json = json.loads(schema) if isinstance(schema, str) else schema
    canonical = to_parsing_canonical_form(as_json)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest() == SUPPORTED_SHAPE


def _write_long(out: bytearray, n: int) -> None:
    """Zig-zag varint, as Avro writes int and long."""
    if not _LONG_MIN <= n <= _LONG_MAX:
        raise OverflowError(f"{n} does not fit an Avro long")
    n = (n << 1) ^ (n >> 63)
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _write_string(out: bytearray, s: str) -> None:
    data = s.encode("utf-8")
    _write_long(out, len(data))
    out += data


def _write_optional_string(out: bytearray, s: str | None) -> None:
    if s is None:
        out.append(0)  # union branch 0: null
    else:
        out.append(2)  # union branch 1 (zig-zag 1 = 2): string
        _write_string(out, s)


def encode(delivery: Delivery, header: bytes) -> bytes:
    """The Delivery in the Confluent wire format, ``header`` from ``avro_codec.wire_header``.

    Raises ValueError, TypeError, KeyError, AttributeError or OverflowError (as fastavro does) for
    a record that does not fit the schema.
    """
    out = bytearray(header)
    s = _write_string
    s(out, delivery.delivery_id)
    s(out, delivery.user_id)
    out.append(_CHANNEL[delivery.channel] << 1)  # indexes < 64 are one zig-zag byte
    _write_optional_string(out, delivery.address)
    out.append(_KIND[delivery.kind] << 1)
    s(out, delivery.category)
    out.append(_PRIORITY[delivery.priority] << 1)
    s(out, delivery.title)
    s(out, delivery.body)
    event_ids = delivery.event_ids
    if event_ids:  # an array is blocks of (count, items), ended by a zero count
        _write_long(out, len(event_ids))
        for event_id in event_ids:
            s(out, event_id)
    out.append(0)
    if not _INT_MIN <= delivery.item_count <= _INT_MAX:
        raise OverflowError(f"item_count {delivery.item_count} does not fit an Avro int")
    _write_long(out, delivery.item_count)
    items = delivery.items
    if items:
        _write_long(out, len(items))
        for item in items:
            s(out, item.event_id)
            s(out, item.title)
            s(out, item.body)
            _write_long(out, item.occurred_at)
    out.append(0)
    _write_optional_string(out, delivery.digest_key)
    s(out, delivery.reason)
    _write_long(out, delivery.created_at)
    _write_long(out, delivery.first_occurred_at)
    _write_optional_string(out, delivery.fallback_of)
    return bytes(out)


class DeliveryEncoder:
    """Deliveries to wire-format bytes for their channel's subject: this module's encoder where
    the subject's schema has the known shape, the generic codec elsewhere."""

    def __init__(self, codec: AvroCodec, subjects: Mapping[str, str]) -> None:
        self._codec = codec
        self._subjects = subjects  # channel key -> registry subject
        self._fast = {ch: supports(codec.schema_text(subject)) for ch, subject in subjects.items()}
        self._headers: dict[str, bytes] = {}  # filled on first use: ids come from the registry
        generic = sorted(ch for ch, fast in self._fast.items() if not fast)
        if generic:
            log.warning("the delivery schema of channels %s is not the one streams/delivery_avro.py "
                        "writes: encoding them with the generic codec (slower)", generic)

    def encode(self, delivery: Delivery) -> bytes:
        channel = delivery.topic_suffix
        subject = self._subjects[channel]
        if not self._fast[channel]:
            return self._codec.encode(subject, delivery.to_avro())
        header = self._headers.get(channel)
        if header is None:
            header = self._headers[channel] = wire_header(self._codec.schema_id(subject))
        try:
            return encode(delivery, header)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise EncodeError(f"delivery does not match {subject}: {exc!r}") from exc
