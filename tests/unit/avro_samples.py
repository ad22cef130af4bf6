"""Generate a valid datum for any Avro schema, to exercise compatibility of every version."""

from __future__ import annotations

from typing import Any

_PRIMITIVES = {
    "null": None,
    "boolean": True,
    "int": 7,
    "long": 1_736_942_400_000,
    "float": 1.5,
    "double": 2.5,
    "bytes": b"\x00\xff",
    "string": "s",
}


def sample(schema: Any, *, nulls: bool = False) -> Any:
    """A datum for ``schema``; unions take their first branch if ``nulls`` else their last."""
    return _sample(schema, {}, None, nulls)


def _sample(schema: Any, named: dict[str, Any], namespace: str | None, nulls: bool) -> Any:
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            return _PRIMITIVES[schema]
        return _sample(named[schema], named, namespace, nulls)
    if isinstance(schema, list):
        return _sample(schema[0] if nulls else schema[-1], named, namespace, nulls)
    kind = schema["type"]
    if kind in ("record", "enum", "fixed"):
        namespace = schema.get("namespace", namespace)
        name = schema["name"]
        named[name] = schema
        if namespace and "." not in name:
            named[f"{namespace}.{name}"] = schema
    if kind == "record":
        return {f["name"]: _sample(f["type"], named, namespace, nulls) for f in schema["fields"]}
    if kind == "enum":
        return schema["symbols"][0]
    if kind == "fixed":
        return b"\x00" * schema["size"]
    if kind == "array":
        return [_sample(schema["items"], named, namespace, nulls)]
    if kind == "map":
        return {"k": _sample(schema["values"], named, namespace, nulls)}
    return _sample(kind, named, namespace, nulls)  # {"type": "long", "logicalType": ...}
