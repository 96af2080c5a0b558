"""Fast constructors for frozen, slotted dataclasses that are made by the hundred thousand.

A frozen dataclass's generated `__init__` stores each field with
`object.__setattr__` (it must get around its own `__setattr__`, which
refuses); calling the slot's descriptor does the same store about twice as
fast. Pickling otherwise goes through the dataclass's `__getstate__`, which
calls `fields()` per object, and `__setstate__`, which stores each field with
`object.__setattr__`: reducing to the constructor and its arguments is about
three times as fast to load. Fields, defaults, order, equality, hashing and
immutability are unchanged.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import TypeVar

__all__ = ["quick_init"]

_C = TypeVar("_C", bound=type)


def quick_init(cls: _C) -> _C:
    """Give a frozen, slotted dataclass a fast `__init__` and `__reduce__` (a class decorator)."""
    names = []
    namespace: dict[str, object] = {"_cls": cls}
    for field in fields(cls):
        if field.default_factory is not MISSING:
            raise TypeError(f"{cls.__name__}.{field.name}: default factories are not supported")
        namespace[f"_set_{field.name}"] = getattr(cls, field.name).__set__
        if field.default is MISSING:
            names.append(field.name)
        else:
            namespace[f"_default_{field.name}"] = field.default
            names.append(f"{field.name}=_default_{field.name}")
    plain = [field.name for field in fields(cls)]
    body = "".join(f"    _set_{name}(self, {name})\n" for name in plain)
    arguments = "".join(f"self.{name}, " for name in plain)
    source = (
        f"def __init__(self, {', '.join(names)}):\n{body}"
        f"def __reduce__(self):\n    return (_cls, ({arguments}))\n"
    )
    made: dict[str, object] = {}
    exec(source, namespace, made)  # noqa: S102 - made from field names
    for method in ("__init__", "__reduce__"):
        function = made[method]
        function.__qualname__ = f"{cls.__qualname__}.{method}"  # type: ignore[attr-defined]
        setattr(cls, method, function)
    return cls
