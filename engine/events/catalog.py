"""The event catalog as an API shows it: a JSON Schema and an example payload per type."""

from __future__ import annotations

from typing import Any

from dsl import ir

__all__ = ["describe", "example", "json_schema"]

_FORMATS = {"email": "email", "url": "uri"}
_EXAMPLE_STRINGS = {"email": "ada@example.com", "url": "https://example.com/"}


def describe(spec: ir.EventSpec) -> dict[str, Any]:
    """One catalog entry: type, description, where it is defined, schema and example."""
    return {
        "type": spec.type,
        "description": spec.description,
        "file": spec.source.file,
        "line": spec.source.line,
        "schema": json_schema(spec.fields),
        "example": example(spec.fields),
    }


def json_schema(fields: tuple[ir.FieldSpec, ...]) -> dict[str, Any]:
    """The JSON Schema (2020-12 vocabulary) of an object with ``fields``."""
    properties = {}
    for field in fields:
        schema = _type_schema(field.type)
        if field.default is not None:
            schema["default"] = field.default
        properties[field.name] = schema
    required = [f.name for f in fields if not f.optional and f.default is None]
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _type_schema(t: ir.TypeSpec) -> dict[str, Any]:
    if t.kind == "object":
        return json_schema(t.fields)
    if t.kind == "list":
        return {"type": "array", "items": _type_schema(t.item) if t.item else {}}
    if t.kind == "string":
        schema: dict[str, Any] = {"type": "string"}
        if t.values:
            schema["enum"] = list(t.values)
        if t.format in _FORMATS:
            schema["format"] = _FORMATS[t.format]
        return schema
    if t.kind == "decimal":
        return {"type": ["string", "number"], "format": "decimal"}
    if t.kind == "timestamp":
        return {"type": "string", "format": "date-time"}
    if t.kind == "int":
        return {"type": "integer"}
    if t.kind == "bool":
        return {"type": "boolean"}
    return {}


def example(fields: tuple[ir.FieldSpec, ...]) -> dict[str, Any]:
    """A payload that fits ``fields``: every field, optional ones included."""
    return {
        f.name: f.default if f.default is not None else _example(f.name, f.type) for f in fields
    }


def _example(name: str, t: ir.TypeSpec) -> Any:
    if t.kind == "object":
        return example(t.fields)
    if t.kind == "list":
        return [_example(name, t.item)] if t.item else []
    if t.kind == "string":
        if t.values:
            return t.values[0]
        return _EXAMPLE_STRINGS.get(t.format or "", f"{name}_1")
    if t.kind == "decimal":
        return "100.00"
    if t.kind == "timestamp":
        return "2026-11-26T10:00:00Z"
    if t.kind == "int":
        return 1
    if t.kind == "bool":
        return True
    return None
