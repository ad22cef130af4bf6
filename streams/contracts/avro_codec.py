"""Avro in the Confluent wire format: magic byte 0, 4-byte big-endian schema id, schemaless body.

Writer schemas are fetched from the registry once per id and cached parsed; a registry call per
event would cap throughput at the registry's latency. Records are decoded into the reader schema
of the same full name when one is configured (schema resolution: old data, current shape).

Timestamps (``timestamp-millis`` and friends) are read and written as plain epoch ints: the
router works in milliseconds, and building a datetime per field per event costs time for nothing.

A registry that was just unreachable is not trusted to say "not found": one that restarts answers
before it has loaded every schema (Apicurio with kafkasql storage replays its journal). For
``SUSPECT_S`` after a failed request, and whenever it does not know a subject this client writes,
"not found" is a ``SchemaUnavailable`` (wait and ask again) rather than a permanent
``unknown_schema``.

The registry is duck-typed. ``confluent_kafka.schema_registry.SchemaRegistryClient`` works as is
(``get_schema(id)`` returning a ``Schema``, ``register_schema``/``lookup_schema`` taking one);
a simple object with ``get_schema(id) -> str`` and ``register(subject, schema_str) -> id`` (and
optionally ``lookup(subject, schema_str) -> id``) works too.
"""

from __future__ import annotations

import contextlib
import io
import json
import struct
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import fastavro
from fastavro.read import SchemaResolutionError
from fastavro.schema import to_parsing_canonical_form

from streams.contracts.schemas import full_name

MAGIC = 0
SUSPECT_S = 60.0  # after the registry failed a request, "not found" may mean "not loaded yet"
_HEADER = struct.Struct(">BI")
HEADER_SIZE = _HEADER.size


def wire_header(schema_id: int) -> bytes:
    """The 5 bytes in front of every Avro body in the Confluent wire format."""
    return _HEADER.pack(MAGIC, schema_id)
# Logical types that become plain ints here (see module docstring).
_RAW_LOGICAL_TYPES = frozenset(
    {
        "timestamp-millis",
        "timestamp-micros",
        "local-timestamp-millis",
        "local-timestamp-micros",
    }
)

SchemaLike = str | dict[str, Any]


class DecodeError(ValueError):
    """Bytes that cannot become a record, now or ever: a permanent failure, the record's own.
    ``reason`` is the DLQ reason: 'undecodable' (not the wire format, or a corrupt body) or
    'unknown_schema' (the registry answered that it does not know the id, or a writer schema that
    cannot be read as the reader schema)."""

    def __init__(self, reason: str, message: str, schema_id: int | None = None) -> None:
        self.reason = reason
        self.schema_id = schema_id
        super().__init__(message)


class SchemaUnavailable(RuntimeError):
    """The registry could not be asked: unreachable, too slow, or it answered with an error other
    than "not found". A transient failure, not the record's: wait and ask again, never dead-letter
    the record for it (``streams/worker/schema_wait.py``)."""

    def __init__(self, what: str, cause: BaseException) -> None:
        self.cause = cause
        super().__init__(f"schema registry unavailable ({what}): {type(cause).__name__}: {cause}")


class EncodeError(ValueError):
    """A record does not match the schema it is written with."""


class AvroCodec:
    def __init__(
        self,
        registry: Any,
        schemas: Mapping[str, SchemaLike] | None = None,
        *,
        auto_register: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``schemas``: subject -> schema used by ``encode``. Each is also the reader schema for
        records whose writer schema has the same full name. ``auto_register`` False: look ids up
        instead of registering (the registry must already hold the schema)."""
        self._registry = registry
        self._auto_register = auto_register
        self._clock = clock
        self._suspect_until = 0.0  # until then a "not found" may be a registry still loading
        self._subjects: dict[str, tuple[str, Any]] = {}  # subject -> (text, parsed writer)
        self._readers: dict[str, tuple[Any, str]] = {}  # full name -> (parsed, canonical form)
        self._ids: dict[str, int] = {}  # subject -> registered id
        # schema id -> (parsed writer, parsed reader or None when identical)
        self._by_id: dict[int, tuple[Any, Any]] = {}
        for subject, schema in (schemas or {}).items():
            self.add_subject(subject, schema)

    def add_subject(self, subject: str, schema: SchemaLike) -> None:
        text = schema if isinstance(schema, str) else json.dumps(schema)
        schema_json = _strip_logical(json.loads(text))
        parsed = fastavro.parse_schema(schema_json)
        self._subjects[subject] = (text, parsed)
        self._readers[full_name(schema_json)] = (parsed, to_parsing_canonical_form(schema_json))
        self._ids.pop(subject, None)

    def schema_text(self, subject: str) -> str:
        """The schema ``encode`` writes for ``subject``, as given to ``add_subject``."""
        return self._subject(subject)[0]

    # -- encode ----------------------------------------------------------------------------
    def schema_id(self, subject: str) -> int:
        """Registry id of the subject's schema (registered or looked up once, then cached).
        SchemaUnavailable when the registry cannot be asked."""
        schema_id = self._ids.get(subject)
        if schema_id is None:
            text, _ = self._subject(subject)
            try:
                if self._auto_register:
                    schema_id = _register(self._registry, subject, text)
                else:
                    schema_id = _lookup(self._registry, subject, text)
            except Exception as exc:
                if _is_not_found(exc):
                    # The deployment registers what clients write (`notipipe stack init`): a
                    # registry without it is still loading, or the deployment is incomplete.
                    self._suspect()
                    raise SchemaUnavailable(f"the registry does not know {subject}: still loading "
                                            "after a restart, or never registered", exc) from exc
                if not _is_transient(exc):
                    raise
                self._suspect()
                raise SchemaUnavailable(f"the id of {subject}", exc) from exc
            self._ids[subject] = schema_id
        return schema_id

    def encode(self, subject: str, record: Mapping[str, Any]) -> bytes:
        schema_id = self.schema_id(subject)
        _, parsed = self._subjects[subject]
        out = io.BytesIO()
        out.write(wire_header(schema_id))
        try:
            fastavro.schemaless_writer(out, parsed, record)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise EncodeError(f"record does not match {subject}: {exc!r}") from exc
        return out.getvalue()

    # -- decode ----------------------------------------------------------------------------
    def decode(self, data: bytes | None) -> tuple[int, dict[str, Any]]:
        """(writer schema id, record in the reader's shape); DecodeError for bad input,
        SchemaUnavailable when its writer schema is not cached and the registry cannot be asked."""
        if data is None:
            raise DecodeError("undecodable", "value is null (a tombstone), not an Avro record")
        if len(data) < HEADER_SIZE:
            raise DecodeError(
                "undecodable",
                f"not Confluent wire format: {len(data)} bytes, shorter than the "
                f"{HEADER_SIZE}-byte header",
            )
        magic, schema_id = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise DecodeError("undecodable", _bad_magic_message(magic))
        writer, reader = self._schemas_for(schema_id)
        buf = io.BytesIO(data)
        buf.seek(HEADER_SIZE)
        try:
            record = fastavro.schemaless_reader(buf, writer, reader)
        except SchemaResolutionError as exc:
            raise DecodeError(
                "unknown_schema",
                f"schema id {schema_id} cannot be read as the reader schema: {exc}",
                schema_id,
            ) from exc
        except Exception as exc:  # fastavro raises many types on corrupt input
            raise DecodeError(
                "undecodable",
                f"corrupt Avro body for schema id {schema_id}: {type(exc).__name__}: {exc}",
                schema_id,
            ) from exc
        if buf.tell() != len(data):
            raise DecodeError(
                "undecodable",
                f"{len(data) - buf.tell()} trailing bytes after the record: was it written with "
                f"schema id {schema_id}?",
                schema_id,
            )
        return schema_id, record

    def decode_many(
        self, payloads: Iterable[bytes | None]
    ) -> list[tuple[int, dict[str, Any]] | DecodeError]:
        """Decode a batch; a bad payload yields its DecodeError in place, the rest go on."""
        out: list[tuple[int, dict[str, Any]] | DecodeError] = []
        decode = self.decode
        for payload in payloads:
            try:
                out.append(decode(payload))
            except DecodeError as exc:
                out.append(exc)
        return out

    def uncached_ids(self, payloads: Iterable[bytes | None]) -> set[int]:
        """Writer schema ids in these payloads' headers that decoding would fetch first."""
        known = self._by_id
        missing: set[int] = set()
        for data in payloads:
            if data is not None and len(data) >= HEADER_SIZE and data[0] == MAGIC:
                schema_id = _HEADER.unpack_from(data)[1]
                if schema_id not in known:
                    missing.add(schema_id)
        return missing

    def fetch_writer(self, schema_id: int) -> None:
        """Fetch and cache one writer schema. An id the registry does not know is left to
        ``decode`` (a DecodeError per record); SchemaUnavailable when the registry cannot be asked."""
        with contextlib.suppress(DecodeError):
            self._schemas_for(schema_id)

    # -- internals -------------------------------------------------------------------------
    def _suspect(self) -> None:
        self._suspect_until = self._clock() + SUSPECT_S

    def _subject(self, subject: str) -> tuple[str, Any]:
        try:
            return self._subjects[subject]
        except KeyError:
            raise KeyError(
                f"no schema for subject {subject!r}; known: {sorted(self._subjects)}"
            ) from None

    def _schemas_for(self, schema_id: int) -> tuple[Any, Any]:
        cached = self._by_id.get(schema_id)
        if cached is not None:
            return cached
        try:
            text = _fetch(self._registry, schema_id)
        except LookupError as exc:
            if self._clock() < self._suspect_until:
                raise SchemaUnavailable(
                    f"schema id {schema_id}: 'not found' from a registry that was away less than "
                    f"{SUSPECT_S:.0f}s ago, and may still be loading", exc) from exc
            raise DecodeError(
                "unknown_schema", f"schema id {schema_id} is not in the registry", schema_id
            ) from exc
        except Exception as exc:
            if not _is_transient(exc):
                raise
            self._suspect()
            raise SchemaUnavailable(f"schema id {schema_id}", exc) from exc
        writer_json = _strip_logical(json.loads(text))
        writer = fastavro.parse_schema(writer_json)
        reader = None
        if isinstance(writer_json, dict) and "name" in writer_json:
            match = self._readers.get(full_name(writer_json))
            # Identical up to docs and defaults: skip resolution work on every read.
            if match is not None and match[1] != to_parsing_canonical_form(writer_json):
                reader = match[0]
        self._by_id[schema_id] = (writer, reader)
        return writer, reader


def _bad_magic_message(magic: int) -> str:
    hint = ""
    if magic in (0x7B, 0x5B):  # '{' or '['
        hint = " — was this produced with a JSON serializer?"
    elif 0x20 <= magic < 0x7F:
        hint = f" ({chr(magic)!r}) — was this produced with a string serializer?"
    return f"not Confluent wire format: first byte 0x{magic:02x}, expected 0x00{hint}"


def _strip_logical(schema: Any) -> Any:
    """A copy of the schema with timestamp logical types removed, so they read as ints."""
    if isinstance(schema, list):
        return [_strip_logical(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strip_logical(v) for k, v in schema.items()}
    if out.get("logicalType") in _RAW_LOGICAL_TYPES:
        del out["logicalType"]
    return out


# -- registry adapters (confluent-kafka client or a simple duck-typed object) --------------
def _is_not_found(exc: Exception) -> bool:
    return isinstance(exc, LookupError) or getattr(exc, "http_status_code", None) == 404


def _is_transient(exc: Exception) -> bool:
    """Not the data's fault: the network (refused, reset, timed out: OSError and httpx's
    transport errors), or the registry answering with an error status (5xx while it starts or its
    storage is away; 401/403 until its credentials are fixed). A program error is not."""
    if isinstance(exc, OSError | TimeoutError):
        return True
    if getattr(exc, "http_status_code", None) is not None:
        return True
    return any(cls.__module__.startswith(("httpx", "httpcore", "requests", "urllib3"))
               for cls in type(exc).__mro__)


def _fetch(registry: Any, schema_id: int) -> str:
    """Schema text for an id; LookupError if the registry does not know it. Other errors
    (network, auth) propagate: they are not the record's fault and must not DLQ it."""
    try:
        schema = registry.get_schema(schema_id)
    except Exception as exc:
        if _is_not_found(exc):
            raise LookupError(schema_id) from exc
        raise
    if isinstance(schema, str):
        return schema
    if isinstance(schema, dict):
        return json.dumps(schema)
    text = getattr(schema, "schema_str", None)
    if text is None:
        raise TypeError(f"registry.get_schema returned {type(schema).__name__}, not a schema")
    return text


def _confluent_schema(text: str) -> Any:
    from confluent_kafka.schema_registry import Schema

    return Schema(text, "AVRO")


def _register(registry: Any, subject: str, text: str) -> int:
    if hasattr(registry, "register_schema"):  # confluent-kafka SchemaRegistryClient
        return int(registry.register_schema(subject, _confluent_schema(text)))
    return int(registry.register(subject, text))


def _lookup(registry: Any, subject: str, text: str) -> int:
    if hasattr(registry, "lookup_schema"):
        return int(registry.lookup_schema(subject, _confluent_schema(text)).schema_id)
    return int(registry.lookup(subject, text))
