"""The Avro codec every pipeline client uses: each topic's subject with its contract."""

from __future__ import annotations

from typing import Any

from streams.contracts.avro_codec import AvroCodec
from streams.contracts.schemas import load_schema, subject_for
from streams.contracts.topics import Topics


def pipeline_codec(registry: Any, topics: Topics) -> AvroCodec:
    """Reads every pipeline topic and writes each in its contract's schema. Schemas are looked up
    in the registry, never registered: registering them is the deployment's step (`notipipe
    stack up`), so a client cannot change a contract by accident."""
    codec = AvroCodec(registry, auto_register=False)
    for spec in topics.specs():
        if spec.schema_file:
            codec.add_subject(subject_for(spec.name), load_schema(spec.schema_file))
    return codec
