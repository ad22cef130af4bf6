"""The Avro contracts: documented, self-contained, consistent, and compatible both ways with every
released version in schemas/history/ (FULL_TRANSITIVE: a new version rolls out producers first or
workers first)."""

import io
import json

import avro.schema
import fastavro
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from avro_samples import sample

from streams.contracts.schemas import (
    HISTORY_DIR,
    SCHEMA_DIR,
    SCHEMA_NAMES,
    full_name,
    history,
    load_schema,
    schema_text,
)

HISTORY = [(name, v, old) for name in SCHEMA_NAMES for v, old in history(name)]


def walk_named(schema, found):
    """Collect every record and enum definition in a schema, nested ones included."""
    if isinstance(schema, list):  # union
        for branch in schema:
            walk_named(branch, found)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "enum"):
            found.append(schema)
        for f in schema.get("fields", ()):
            walk_named(f["type"], found)
        for key in ("items", "values"):
            if key in schema:
                walk_named(schema[key], found)
        if isinstance(kind, dict | list):  # {"type": {...}} wrapper
            walk_named(kind, found)


def test_every_schema_file_is_known():
    assert sorted(p.stem for p in SCHEMA_DIR.glob("*.avsc")) == sorted(SCHEMA_NAMES)


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_is_self_contained_and_namespaced(name):
    schema = load_schema(name)
    fastavro.parse_schema(schema)  # no outside named types needed
    avro.schema.parse(schema_text(name))
    assert schema["namespace"] == "io.notipipe.v1"


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_every_record_enum_and_field_has_a_doc(name):
    named = []
    walk_named(load_schema(name), named)
    missing = [n["name"] for n in named if not n.get("doc")]
    missing += [
        f"{n['name']}.{f['name']}" for n in named for f in n.get("fields", ()) if not f.get("doc")
    ]
    assert missing == []


def test_shared_named_types_are_identical_across_files():
    definitions = {}
    for name in SCHEMA_NAMES:
        named = []
        walk_named(load_schema(name), named)
        for n in named:
            if n["type"] == "enum":
                definitions.setdefault(n["name"], set()).add(tuple(n["symbols"]))
    assert definitions["Channel"] == {("EMAIL", "SMS", "PUSH", "IN_APP")}
    assert definitions["Priority"] == {("LOW", "NORMAL", "HIGH", "CRITICAL")}


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_history_has_v1_and_the_current_schema_is_released(name):
    versions = history(name)
    assert (HISTORY_DIR / name / "v1.avsc").is_file()
    assert [v for v, _ in versions] == list(range(1, len(versions) + 1)), "gap in versions"
    # Changing a contract means adding vN+1 here, which puts it under the compatibility test.
    assert versions[-1][1] == load_schema(name), f"copy {name}.avsc to history as a new version"


@pytest.mark.parametrize(
    ("name", "version", "old"), HISTORY, ids=[f"{n}-v{v}" for n, v, _ in HISTORY]
)
def test_current_reads_data_written_with_every_version(name, version, old):
    current = fastavro.parse_schema(load_schema(name))
    writer = fastavro.parse_schema(old)
    for nulls in (False, True):
        datum = sample(old, nulls=nulls)
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, writer, datum)
        buf.seek(0)
        record = fastavro.schemaless_reader(buf, writer, current)
        assert set(record) == {f["name"] for f in load_schema(name)["fields"]}


@pytest.mark.parametrize(
    ("name", "version", "old"), HISTORY, ids=[f"{n}-v{v}" for n, v, _ in HISTORY]
)
def test_backward_compatible_by_avro_rules(name, version, old):
    reader = avro.schema.parse(schema_text(name))
    writer = avro.schema.parse(json.dumps(old))
    result = ReaderWriterCompatibilityChecker().get_compatibility(reader, writer)
    assert result.compatibility is SchemaCompatibilityType.compatible, result.messages


@pytest.mark.parametrize(
    ("name", "version", "old"), HISTORY, ids=[f"{n}-v{v}" for n, v, _ in HISTORY]
)
def test_every_version_reads_data_written_with_the_current_one(name, version, old):
    """Producers may switch to a new version while workers still read an old one."""
    reader = avro.schema.parse(json.dumps(old))
    writer = avro.schema.parse(schema_text(name))
    result = ReaderWriterCompatibilityChecker().get_compatibility(reader, writer)
    assert result.compatibility is SchemaCompatibilityType.compatible, result.messages
    for nulls in (False, True):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, fastavro.parse_schema(load_schema(name)),
                                   sample(load_schema(name), nulls=nulls))
        buf.seek(0)
        record = fastavro.schemaless_reader(buf, fastavro.parse_schema(load_schema(name)),
                                            fastavro.parse_schema(old))
        assert set(record) == {f["name"] for f in old["fields"]}


def test_event_v2_adds_only_the_optional_summary():
    versions = dict(history("notification_event"))
    added = {f["name"] for f in versions[2]["fields"]} - {f["name"] for f in versions[1]["fields"]}
    assert added == {"summary"}
    summary = next(f for f in versions[2]["fields"] if f["name"] == "summary")
    assert summary["type"] == ["null", "string"] and summary["default"] is None


def test_an_incompatible_change_would_be_caught():
    # Guard for the guard: a new required field without default must fail both checks.
    old = load_schema("delivery")
    new = load_schema("delivery")
    new["fields"].append({"name": "tenant", "type": "string", "doc": "x"})
    result = ReaderWriterCompatibilityChecker().get_compatibility(
        avro.schema.parse(json.dumps(new)), avro.schema.parse(json.dumps(old))
    )
    assert result.compatibility is SchemaCompatibilityType.incompatible
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(old), sample(old))
    buf.seek(0)
    with pytest.raises(Exception):  # noqa: B017 - fastavro's resolution error type varies
        fastavro.schemaless_reader(buf, fastavro.parse_schema(old), fastavro.parse_schema(new))


def test_full_name():
    assert full_name(load_schema("delivery")) == "io.notipipe.v1.Delivery"
