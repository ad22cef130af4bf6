"""The Avro contracts in ``schemas/`` and their version history in ``schemas/history/``."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import fastavro

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
HISTORY_DIR = SCHEMA_DIR / "history"
SCHEMA_NAMES = ("notification_event", "user_preferences", "delivery", "dead_letter", "delivery_status")

_VERSION_FILE = re.compile(r"v(\d+)\.avsc")


def schema_path(name: str) -> Path:
    path = SCHEMA_DIR / f"{name.removesuffix('.avsc')}.avsc"
    if not path.is_file():
        raise FileNotFoundError(f"no schema {name!r}: {path} does not exist; known: {SCHEMA_NAMES}")
    return path


@cache
def schema_text(name: str) -> str:
    """The .avsc file as written: what gets registered under ``<topic>-value``."""
    return schema_path(name).read_text(encoding="utf-8")


def load_schema(name: str) -> dict[str, Any]:
    """The schema as a fresh JSON dict (callers may mutate it; fastavro's parse does)."""
    return json.loads(schema_text(name))


@cache
def parsed_schema(name: str) -> Any:
    """fastavro-parsed schema, cached; for local reads and writes without a registry."""
    return fastavro.parse_schema(load_schema(name))


def full_name(schema: dict[str, Any]) -> str:
    """Namespace-qualified name of a record schema, e.g. io.notipipe.v1.Delivery."""
    name = schema["name"]
    namespace = schema.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"


def history(name: str) -> list[tuple[int, dict[str, Any]]]:
    """Earlier (and the current) released versions of a schema, oldest first."""
    folder = HISTORY_DIR / name
    versions = []
    for path in folder.glob("v*.avsc") if folder.is_dir() else ():
        match = _VERSION_FILE.fullmatch(path.name)
        if match:
            versions.append((int(match.group(1)), json.loads(path.read_text(encoding="utf-8"))))
    return sorted(versions, key=lambda v: v[0])


def subject_for(topic: str) -> str:
    """Registry subject of a topic's values (TopicNameStrategy)."""
    return f"{topic}-value"
