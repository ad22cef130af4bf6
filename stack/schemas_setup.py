"""Register every schema in schemas/ under `<topic>-value` with its compatibility rule.

Writing to the registry needs its schema writer's credentials (streams/connection/http.py);
reading does not, so the worker, the SDK and Connect's converter use no credentials.
"""

from __future__ import annotations

import json
from pathlib import Path

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from stack.settings import PROJECT_ROOT, StackSettings
from streams.connection.http import registry_writer
from streams.contracts.pipeline_codec import EVENT_SCHEMA, event_schema
from streams.contracts.topics import Topics

SCHEMA_DIR = PROJECT_ROOT / "schemas"
# Both ways, with every released version: new readers read old data (workers rolled first) and
# old readers read new data (producers switched first), so a contract rolls out in either order.
COMPATIBILITY = "FULL_TRANSITIVE"


class SchemaRegistrationError(RuntimeError):
    """The registry refused a schema; usually an incompatible change."""


def registry_client(settings: StackSettings) -> SchemaRegistryClient:
    """A client that may register schemas and set compatibility rules."""
    writer = registry_writer(settings)
    return SchemaRegistryClient({"url": settings.registry_url,
                                 "basic.auth.user.info": f"{writer.username}:{writer.password}"})


def _refused(exc: SchemaRegistryError) -> bool:
    return exc.http_status_code in (401, 403)


def _refused_message(settings: StackSettings, exc: SchemaRegistryError) -> str:
    return (f"the registry at {settings.registry_url} refused the schema writer's credentials "
            f"(HTTP {exc.http_status_code}); on the local stack leave NOTIPIPE_REGISTRY_USERNAME and "
            "NOTIPIPE_REGISTRY_PASSWORD unset, elsewhere set them to a user with the sr-developer role")


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
        try:
            client.set_compatibility(subject_name=subject, level=COMPATIBILITY)
        except SchemaRegistryError as exc:
            if _refused(exc):
                raise SchemaRegistrationError(_refused_message(settings, exc)) from None
        try:
            ids[subject] = client.register_schema(subject, Schema(text, "AVRO"))
        except SchemaRegistryError as exc:
            if _refused(exc):
                raise SchemaRegistrationError(_refused_message(settings, exc)) from None
            raise SchemaRegistrationError(
                f"the registry refused schemas/{spec.schema_file} for {subject}: {exc}. "
                f"If this is an incompatible change, evolve it under {COMPATIBILITY} "
                "(add optional fields with defaults; never remove a field without a default, or "
                "retype one)") from exc
        client.set_compatibility(subject_name=subject, level=COMPATIBILITY)
    return ids
