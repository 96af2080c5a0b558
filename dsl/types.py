"""Static types of expression values, and the types of catalog fields."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from types import MappingProxyType

from dsl.frozen import quick_init

__all__ = [
    "ANY",
    "BOOL",
    "DECIMAL",
    "DURATION",
    "ERROR",
    "INT",
    "NULL",
    "SCALARS",
    "STRING",
    "TIMESTAMP",
    "Type",
    "comparable",
    "is_numeric",
    "is_stringy",
    "join",
    "list_of",
    "object_of",
]


@quick_init  # the checker makes one per expression node, joins and field
@dataclass(frozen=True, slots=True)
class Type:
    """A static type.

    `kind` is one of string, int, decimal, bool, timestamp, duration, null,
    list, object, any (unknown until run time) or error (already reported:
    suppresses follow-on errors).
    """

    kind: str
    item: Type | None = None
    fields: tuple[tuple[str, Type], ...] = ()
    values: tuple[str, ...] = ()
    format: str | None = None
    optional: bool = False
    label: str | None = None
    open: bool = False

    def field(self, name: str) -> Type | None:
        """The type of a field of an object type, if it has one."""
        for key, value in self.fields:
            if key == name:
                return value
        return None

    def field_names(self) -> list[str]:
        return [key for key, _ in self.fields]

    def as_optional(self, optional: bool = True) -> Type:
        return self if self.optional == optional else replace(self, optional=optional)

    def describe(self) -> str:
        """How the type reads in a message: `decimal`, `list of string`, ..."""
        if self.kind == "list" and self.item is not None:
            return f"list of {self.item.describe()}"
        if self.values:
            return "enum (" + " | ".join(f'"{v}"' for v in self.values) + ")"
        if self.format:
            return self.format
        return self.kind


STRING = Type("string")
INT = Type("int")
DECIMAL = Type("decimal")
BOOL = Type("bool")
TIMESTAMP = Type("timestamp")
DURATION = Type("duration")
NULL = Type("null", optional=True)
ANY = Type("any")
ERROR = Type("error")

SCALARS = MappingProxyType(
    {
        "string": STRING,
        "int": INT,
        "decimal": DECIMAL,
        "bool": BOOL,
        "timestamp": TIMESTAMP,
        "email": Type("string", format="email"),
        "url": Type("string", format="url"),
        "duration": DURATION,
    }
)


def list_of(item: Type) -> Type:
    return Type("list", item=item)


def object_of(
    fields: Iterable[tuple[str, Type]], label: str | None = None, *, open: bool = False
) -> Type:
    return Type("object", fields=tuple(fields), label=label, open=open)


def is_numeric(t: Type) -> bool:
    return t.kind in ("int", "decimal")


def is_stringy(t: Type) -> bool:
    return t.kind == "string"


def _loose(t: Type) -> bool:
    return t.kind in ("any", "error", "null")


def comparable(a: Type, b: Type) -> bool:
    """Whether `==` between values of these types can ever be true."""
    if _loose(a) or _loose(b):
        return True
    if is_numeric(a) and is_numeric(b):
        return True
    if a.kind == "list" and b.kind == "list":
        return a.item is None or b.item is None or comparable(a.item, b.item)
    return a.kind == b.kind


def join(a: Type, b: Type) -> Type:
    """The type of a value that is either an `a` or a `b` (for `??`, merged events)."""
    if a is b and not a.values and a.kind not in ("object", "list"):
        return a  # a field of a shared scalar type (`string`) in both events
    optional = a.optional or b.optional
    if a.kind == "error" or b.kind == "error":
        return ERROR
    if a.kind == "null":
        return b.as_optional(True)
    if b.kind == "null":
        return a.as_optional(True)
    if is_numeric(a) and is_numeric(b) and a.kind != b.kind:
        return DECIMAL.as_optional(optional)
    if a.kind != b.kind:
        return ANY
    if a.kind == "object":
        label = a.label if a.label == b.label else None
        names_a = [name for name, _ in a.fields]
        if names_a == [name for name, _ in b.fields] and len(set(names_a)) == len(names_a):
            # The same fields in the same order (events of one family): pairwise.
            pairs = zip(a.fields, b.fields, strict=True)
            same = tuple((name, join(fa, fb)) for (name, fa), (_, fb) in pairs)
            return Type("object", fields=same, label=label, optional=optional)
        names = dict.fromkeys([*a.field_names(), *b.field_names()])
        merged = []
        for name in names:
            fa, fb = a.field(name), b.field(name)
            if fa is not None and fb is not None:
                merged.append((name, join(fa, fb)))
            else:
                present = fa if fa is not None else fb
                assert present is not None
                merged.append((name, present.as_optional(True)))
        return Type("object", fields=tuple(merged), label=label, optional=optional)
    if a.kind == "list" and a.item is not None and b.item is not None:
        return Type("list", item=join(a.item, b.item), optional=optional)
    if a.values and b.values:
        values = tuple(dict.fromkeys([*a.values, *b.values]))
        return Type(a.kind, values=values, optional=optional)
    if a.values or b.values or a.format != b.format:
        return Type(a.kind, optional=optional)
    return a.as_optional(optional)
