"""The event catalog: event types with their field types, and event patterns over them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from pydantic import JsonValue

from dsl import ast, ir
from dsl.diagnostics import did_you_mean
from dsl.expr import Report
from dsl.types import ANY, SCALARS, STRING, TIMESTAMP, Type, join, list_of, object_of

__all__ = ["Catalog", "EventInfo", "build_catalog", "pattern_matches", "split_pattern"]


@dataclass(frozen=True, slots=True)
class EventInfo:
    """One catalog event: its data type for the checker and its spec for the IR."""

    data: Type
    spec: ir.EventSpec


def split_pattern(pattern: str) -> tuple[str, ...]:
    return tuple(pattern.split("."))


def pattern_matches(pattern: str, event_type: str) -> bool:
    """`*` stands for exactly one segment: `investment.*` matches `investment.created`."""
    return _segments_match(split_pattern(pattern), split_pattern(event_type))


def _segments_match(want: tuple[str, ...], have: tuple[str, ...]) -> bool:
    return len(want) == len(have) and all(w in ("*", h) for w, h in zip(want, have, strict=True))


class Catalog:
    """The event types rules may refer to."""

    def __init__(self, events: dict[str, EventInfo]) -> None:
        self.events = events
        # Many rules repeat the same patterns; each is resolved once per catalog.
        self._matching: dict[str, list[str]] = {}
        self._data: dict[tuple[tuple[str, ...], str], Type] = {}

    def names(self) -> list[str]:
        return list(self.events)

    def matching(self, pattern: str) -> list[str]:
        if "*" not in pattern:
            return [pattern] if pattern in self.events else []
        found = self._matching.get(pattern)
        if found is None:
            want = split_pattern(pattern)
            head = pattern[: pattern.index("*")]  # what a match starts with, checked first
            found = [
                name
                for name in self.events
                if name.startswith(head) and _segments_match(want, split_pattern(name))
            ]
            self._matching[pattern] = found
        return list(found)

    def data_type(self, event_types: Iterable[str], label: str) -> Type:
        """The type of `event.data` for an event that is one of `event_types`."""
        key = (tuple(event_types), label)
        known = self._data.get(key)
        if known is None:
            known = self._data[key] = self._merge(key[0], label)
        return known

    def _merge(self, event_types: Sequence[str], label: str) -> Type:
        merged: Type | None = None
        for name in event_types:
            data = self.events[name].data
            merged = data if merged is None else join(merged, data)
        if merged is None:
            return ANY
        return Type("object", fields=merged.fields, label=label)

    def envelope(self, event_types: Sequence[str], data: Type) -> Type:
        """The type of `event`: id, type, time, source and the data."""
        kind = Type("string", values=tuple(event_types)) if event_types else STRING
        fields = [
            ("id", STRING),
            ("type", kind),
            ("time", TIMESTAMP),
            ("source", STRING),
            ("data", data),
        ]
        return object_of(fields, label="the event envelope")


def build_catalog(definitions: Iterable[ast.EventDef], report: Report) -> Catalog:
    """Check the catalog's event blocks and build the catalog."""
    events: dict[str, EventInfo] = {}
    for event in definitions:
        label = f"event {event.name}"
        description = None
        fields: list[ir.FieldSpec] = []
        types: list[tuple[str, Type]] = []
        seen: set[str] = set()
        for stmt in event.body:
            if isinstance(stmt, ast.Attribute):
                if stmt.name != "description":
                    hint = did_you_mean(stmt.name, ["description"])
                    message = f"unknown attribute '{stmt.name}' in an event block"
                    report("E018", message, stmt.span, hint or "fields are written `name: type`")
                elif isinstance(stmt.value, ast.Literal) and isinstance(stmt.value.value, str):
                    description = stmt.value.value
                else:
                    report("E022", "description must be a string", stmt.value.span, None)
                continue
            _add_field(stmt, label, seen, fields, types, report)
        source = ir.Source(file=event.span.file, line=event.span.line)
        spec = ir.EventSpec(
            type=event.name, description=description, fields=tuple(fields), source=source
        )
        events[event.name] = EventInfo(object_of(types, label=label), spec)
    return Catalog(events)


def _add_field(
    field: ast.FieldDef,
    label: str,
    seen: set[str],
    specs: list[ir.FieldSpec],
    types: list[tuple[str, Type]],
    report: Report,
) -> None:
    """Add a field of an event or an object type, unless its name is taken already."""
    if field.name in seen:
        report("E010", f"field '{field.name}' is declared twice in {label}", field.span, None)
        return
    seen.add(field.name)
    spec, t = _field(field, label, report)
    specs.append(spec)
    types.append((field.name, t))


def _field(field: ast.FieldDef, label: str, report: Report) -> tuple[ir.FieldSpec, Type]:
    spec, t = _type(field.type, f"{field.name} of {label}", report)
    default: JsonValue = None
    if field.default is not None:
        default = _default(field.default, t, report)
    optional = field.optional and field.default is None
    return (
        ir.FieldSpec(name=field.name, type=spec, optional=optional, default=default),
        t.as_optional(optional),
    )


def _type(node: ast.TypeExpr, label: str, report: Report) -> tuple[ir.TypeSpec, Type]:
    if isinstance(node, ast.NamedType):
        scalar = SCALARS.get(node.name)
        if scalar is None or node.name == "duration":
            names = [n for n in SCALARS if n != "duration"]
            hint = did_you_mean(node.name, names) or "types: " + ", ".join(names)
            report("E024", f"unknown type '{node.name}'", node.span, hint)
            return ir.TypeSpec(kind="any"), ANY
        return ir.TypeSpec(kind=scalar.kind, format=scalar.format), scalar
    if isinstance(node, ast.ListType):
        item_spec, item = _type(node.item, label, report)
        return ir.TypeSpec(kind="list", item=item_spec), list_of(item)
    if isinstance(node, ast.EnumType):
        values = tuple(dict.fromkeys(node.values))
        return ir.TypeSpec(kind="string", values=values), Type("string", values=values)
    specs: list[ir.FieldSpec] = []
    types: list[tuple[str, Type]] = []
    seen: set[str] = set()
    for sub in node.fields:
        _add_field(sub, label, seen, specs, types, report)
    return ir.TypeSpec(kind="object", fields=tuple(specs)), object_of(types, label=label)


def _default(expr: ast.Expr, t: Type, report: Report) -> JsonValue:
    value = expr.value if isinstance(expr, ast.Literal) else None
    ok = isinstance(expr, ast.Literal) and value is not None
    if ok:
        if t.kind == "string":
            ok = isinstance(value, str) and (not t.values or value in t.values)
        elif t.kind == "bool":
            ok = isinstance(value, bool)
        elif t.kind == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif t.kind == "decimal":
            ok = isinstance(value, int | Decimal) and not isinstance(value, bool)
        else:
            ok = False
    if not ok:
        report("E026", f"default value must be a literal {t.describe()}", expr.span, None)
        return None
    if isinstance(value, Decimal):
        return str(value)
    return value
