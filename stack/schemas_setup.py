"""Register every schema in schemas/ under `<topic>-value` with its compatibility rule."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from stack.settings import PROJECT_ROOT, StackSettings
from streams.contracts.pipeline_codec import EVENT_SCHEMA, event_schema
from streams.contracts.topics import Topics

SCHEMA_DIR = PROJECT_ROOT / "schemas"
# Both ways, with every released version: new readers read old data (workers rolled first) and
# old readers read new data (producers switched first), so a contract rolls out in either order.
COMPATIBILITY = "FULL_TRANSITIVE"


class SchemaRegistrationError(RuntimeError):
    """The registry refused a schema; usually an incompatible change."""


def registry_client(settings: StackSettings) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": settings.registry_url})


def schema_text(schema_file: str, schema_dir: Path = SCHEMA_DIR) -> str:
    # Compact JSON: the registry compares canonical text, and this keeps ids stable across runs.
    return json.dumps(json.loads((schema_dir / schema_file).read_text()), separators=(",", ":"))


def register_schemas(settings: StackSettings, event_version: int = 0) -> dict[str, int]:
    """Returns subject -> schema id. Re-registering an identical schema returns the same id.
    ``event_version`` > 0: the events subject gets that released version of NotificationEvent
    (and none after it) instead of the current one: a deployment that has not rolled a new
    version out yet."""
    client = registry_client(settings)
    ids: dict[str, int] = {}
    for spec in Topics(settings.topic_prefix).specs():
        if spec.schema_file is None:
            continue
        subject = f"{spec.name}-value"
        text = schema_text(spec.schema_file)
        if spec.schema_file == EVENT_SCHEMA and event_version:
            text = json.dumps(event_schema(event_version), separators=(",", ":"))
        # Apicurio only keeps a subject's rule once the subject exists: it is set again after.
        with contextlib.suppress(SchemaRegistryError):
            client.set_compatibility(subject_name=subject, level=COMPATIBILITY)
        try:
            ids[subject] = client.register_schema(subject, Schema(text, "AVRO"))
        except SchemaRegistryError as exc:
            raise SchemaRegistrationError(
                f"the registry refused schemas/{spec.schema_file} for {subject}: {exc}. "
                f"If this is an incompatible change, evolve it under {COMPATIBILITY} "
                "(add optional fields with defaults; never remove a field without a default, or "
                "retype one)") from exc
        client.set_compatibility(subject_name=subject, level=COMPATIBILITY)
    return ids
