"""The Avro codec every pipeline client uses: each topic's subject with its contract."""

from __future__ import annotations

from typing import Any

from streams.contracts.avro_codec import AvroCodec
from streams.contracts.schemas import history, load_schema, subject_for
from streams.contracts.topics import Topics

EVENT_SCHEMA = "notification_event.avsc"


def pipeline_codec(registry: Any, topics: Topics, event_version: int = 0) -> AvroCodec:
    """Reads every pipeline topic and writes each in its contract's schema. Schemas are looked up
    in the registry, never registered: registering them is the deployment's step (`notipipe
    stack up`), so a client cannot change a contract by accident.

    ``event_version`` > 0 reads and writes events as that released NotificationEvent version
    instead of the current one (``NOTIPIPE_EVENT_SCHEMA_VERSION``): a producer that must not write
    a new version before every worker reads it, or a worker that reads the fields of that version
    only, as the code released with it did."""
    codec = AvroCodec(registry, auto_register=False)
    for spec in topics.specs():
        if spec.schema_file:
            schema = load_schema(spec.schema_file)
            if spec.schema_file == EVENT_SCHEMA and event_version:
                schema = event_schema(event_version)
            codec.add_subject(subject_for(spec.name), schema)
    return codec


def event_schema(version: int) -> dict[str, Any]:
    """A released NotificationEvent version (KeyError naming the released ones otherwise)."""
    released = dict(history(EVENT_SCHEMA.removesuffix(".avsc")))
    if version not in released:
        raise KeyError(f"NotificationEvent v{version} was never released; released: "
                       + ", ".join(f"v{v}" for v in sorted(released)))
    return released[version]
