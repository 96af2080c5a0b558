"""Event payloads checked against the catalog: every problem, with its path, at once."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from dsl import ir
from dsl.expr import did_you_mean

__all__ = ["FieldProblem", "check_payload", "typed_view"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_MAX_DEPTH = 32


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One field that does not fit the catalog: where (``data.investor.email``) and why."""

    path: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


def check_payload(
    spec: ir.EventSpec, data: object, *, root: str = "data"
) -> tuple[dict[str, Any], list[FieldProblem]]:
    """Check ``data`` against ``spec``; answer the data with defaults filled, and the problems.

    Unknown fields are problems (with the closest known name), so a misspelt
    field is caught where it is produced, not silently ignored by every rule.
    """
    try:
        return _fast_checker(spec)(data), []
    except _Invalid:
        pass
    problems: list[FieldProblem] = []
    if not isinstance(data, dict):
        problems.append(FieldProblem(root, f"must be an object, not {_kind(data)}"))
        return {}, problems
    return _object(spec.fields, data, root, problems, 0), problems


def _object(
    fields: tuple[ir.FieldSpec, ...],
    data: dict[str, Any],
    path: str,
    problems: list[FieldProblem],
    depth: int,
) -> dict[str, Any]:
    known = {field.name: field for field in fields}
    out: dict[str, Any] = {}
    for name in data:
        if name not in known:
            hint = did_you_mean(name, list(known))
            suffix = f"; {hint}" if hint else ""
            problems.append(FieldProblem(f"{path}.{name}", f"unknown field{suffix}"))
    for field in fields:
        where = f"{path}.{field.name}"
        if field.name not in data or data[field.name] is None:
            if field.default is not None:
                out[field.name] = field.default
            elif not field.optional:
                problems.append(FieldProblem(where, "is required"))
            continue
        out[field.name] = _value(field.type, data[field.name], where, problems, depth + 1)
    return out


def _value(
    t: ir.TypeSpec, value: object, path: str, problems: list[FieldProblem], depth: int
) -> Any:
    if depth > _MAX_DEPTH:
        problems.append(FieldProblem(path, "is nested too deeply"))
        return value
    reason = None
    if t.kind == "object":
        if isinstance(value, dict):
            return _object(t.fields, value, path, problems, depth)
        reason = f"must be an object, not {_kind(value)}"
    elif t.kind == "list":
        if isinstance(value, list):
            item = t.item or ir.TypeSpec(kind="any")
            return [
                _value(item, v, f"{path}[{i}]", problems, depth + 1) for i, v in enumerate(value)
            ]
        reason = f"must be a list, not {_kind(value)}"
    elif t.kind == "any":
        return value
    else:
        reason = _scalar(t, value)
    if reason is not None:
        problems.append(FieldProblem(path, reason))
    return value


def _scalar(t: ir.TypeSpec, value: object) -> str | None:
    """Why ``value`` is not a ``t``, or None when it is."""
    if t.kind == "string":
        if not isinstance(value, str):
            return f"must be a string, not {_kind(value)}"
        if "\x00" in value:  # no database text type can hold it (PostgreSQL refuses it)
            return "must not contain NUL characters"
        if t.values and value not in t.values:
            return "must be one of " + ", ".join(repr(v) for v in t.values)
        if t.format == "email" and not _EMAIL.match(value):
            return "must be an email address"
        if t.format == "url" and not _is_url(value):
            return "must be an http(s) URL"
        return None
    if t.kind == "bool":
        return None if isinstance(value, bool) else f"must be true or false, not {_kind(value)}"
    if t.kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"must be an integer, not {_kind(value)}"
    if t.kind == "decimal":
        return None if _is_decimal(value) else f"must be a decimal number, not {_kind(value)}"
    if t.kind == "timestamp":
        return None if _is_timestamp(value) else "must be an RFC 3339 timestamp with a time zone"
    return None


def _is_decimal(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return value == value and value not in (float("inf"), float("-inf"))
    if isinstance(value, str):
        try:
            return Decimal(value).is_finite()
        except InvalidOperation:
            return False
    return False


def _is_timestamp(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return False
    return parsed.tzinfo is not None and "T" in value.upper()


def _is_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# The fast path. Most events are valid, so each event type's fields are compiled
# once into closures that only say yes (the data, defaults filled) or no; on a
# no, the walk above runs to name every problem with its path. Both accept
# exactly the same data: tests/unit/test_payload.py checks them against each
# other on generated specs and payloads.


class _Invalid(Exception):
    pass


_INVALID = _Invalid()
_Check = Callable[[Any], Any]
_compiled: dict[int, tuple[ir.EventSpec, _Check]] = {}


def _fast_checker(spec: ir.EventSpec) -> _Check:
    entry = _compiled.get(id(spec))
    if entry is not None and entry[0] is spec:
        return entry[1]
    if len(_compiled) > 4096:  # rule sets come and go with reloads
        _compiled.clear()
    check = _compile_object(spec.fields, 0)
    _compiled[id(spec)] = (spec, check)
    return check


def _compile_object(fields: tuple[ir.FieldSpec, ...], depth: int) -> _Check:
    names = frozenset(field.name for field in fields)
    plan = [
        (field.name, _compile(field.type, depth + 1), field.default, field.optional)
        for field in fields
    ]

    def check(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict) or not value.keys() <= names:
            raise _INVALID
        out: dict[str, Any] = {}
        for name, check_value, default, optional in plan:
            item = value.get(name)
            if item is None:
                if default is not None:
                    out[name] = default
                elif not optional:
                    raise _INVALID
                continue
            out[name] = check_value(item)
        return out

    return check


def _compile(t: ir.TypeSpec, depth: int) -> _Check:
    if depth > _MAX_DEPTH:
        return _refuse
    if t.kind == "object":
        return _compile_object(t.fields, depth)
    if t.kind == "list":
        check_item = _compile(t.item or ir.TypeSpec(kind="any"), depth + 1)

        def check_list(value: Any) -> list[Any]:
            if not isinstance(value, list):
                raise _INVALID
            return [check_item(item) for item in value]

        return check_list
    if t.kind == "any":
        return _same
    if t.kind == "string" and not t.values and t.format is None:
        return _plain_string
    if t.kind == "decimal":
        return _decimal

    def check_scalar(value: Any) -> Any:
        if _scalar(t, value) is not None:
            raise _INVALID
        return value

    return check_scalar


def _plain_string(value: Any) -> Any:
    if not isinstance(value, str) or "\x00" in value:
        raise _INVALID
    return value


def _decimal(value: Any) -> Any:
    if not _is_decimal(value):
        raise _INVALID
    return value


def _refuse(value: Any) -> Any:
    raise _INVALID


def _same(value: Any) -> Any:
    return value


def typed_view(spec: ir.EventSpec, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` as expressions should see it: decimals as ``Decimal``, timestamps as ``datetime``.

    JSON carries a decimal as a string (``"2500.00"``) or a number, and a time
    as text; rules compare them as what the catalog says they are. Values that
    do not convert are left as they are (evaluation stays total).
    """
    return _typed_fields(spec.fields, data)


def _typed_fields(fields: tuple[ir.FieldSpec, ...], data: dict[str, Any]) -> dict[str, Any]:
    out = dict(data)
    for field in fields:
        if field.name in out:
            out[field.name] = _typed(field.type, out[field.name])
    return out


def _typed(t: ir.TypeSpec, value: Any) -> Any:
    if t.kind == "decimal" and isinstance(value, str | int | float) and _is_decimal(value):
        return Decimal(str(value))
    if t.kind == "timestamp" and isinstance(value, str) and _is_timestamp(value):
        return datetime.fromisoformat(value)
    if t.kind == "object" and isinstance(value, dict):
        return _typed_fields(t.fields, value)
    if t.kind == "list" and isinstance(value, list) and t.item is not None:
        return [_typed(t.item, item) for item in value]
    return value
