"""What workflow steps take and return: action arguments and result types."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from dsl.types import ANY, DECIMAL, INT, STRING, Type, object_of

__all__ = ["ACTIONS", "RESULTS", "ActionSpec", "assignable"]

_OPTIONAL_STRING = STRING.as_optional(True)
_OPEN_MAP = object_of((), open=True)


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """The named arguments of an action (type, required) and the type of its result."""

    args: tuple[tuple[str, Type, bool], ...]
    result: Type

    def arg(self, name: str) -> tuple[Type, bool] | None:
        for key, t, required in self.args:
            if key == name:
                return t, required
        return None

    def names(self) -> list[str]:
        return [key for key, _, _ in self.args]


def _status(*values: str) -> Type:
    return Type("string", values=values)


ACTIONS = MappingProxyType(
    {
        "charge": ActionSpec(
            args=(
                ("customer", STRING, True),
                ("amount", DECIMAL, True),
                ("currency", STRING, False),
                ("payment_method", STRING, False),
                ("description", STRING, False),
                ("metadata", _OPEN_MAP, False),
            ),
            result=object_of(
                [
                    ("id", STRING),
                    ("status", _status("succeeded", "pending", "requires_action", "failed")),
                    ("amount", DECIMAL),
                    ("currency", STRING),
                    ("error", _OPTIONAL_STRING),
                    ("receipt_url", Type("string", format="url", optional=True)),
                ],
                label="the result of charge()",
            ),
        ),
        "refund": ActionSpec(
            args=(
                ("transaction", STRING, True),
                ("amount", DECIMAL, False),
                ("reason", STRING, False),
            ),
            result=object_of(
                [
                    ("id", STRING),
                    ("status", _status("succeeded", "pending", "failed")),
                    ("amount", DECIMAL),
                    ("error", _OPTIONAL_STRING),
                ],
                label="the result of refund()",
            ),
        ),
        "http": ActionSpec(
            args=(
                ("url", STRING, True),
                ("method", _status("GET", "POST", "PUT", "PATCH", "DELETE"), False),
                ("headers", _OPEN_MAP, False),
                ("body", ANY, False),
            ),
            result=object_of(
                [("status", INT), ("body", ANY), ("headers", _OPEN_MAP)],
                label="the result of http()",
            ),
        ),
        "update_record": ActionSpec(
            args=(
                (
                    "record",
                    _status("investment", "deal", "payout", "document", "user", "transaction"),
                    True,
                ),
                ("id", STRING, True),
                ("fields", _OPEN_MAP, True),
            ),
            result=object_of(
                [("id", STRING), ("record", STRING)], label="the result of update_record()"
            ),
        ),
    }
)

RESULTS = MappingProxyType(
    {
        "send_email": object_of(
            [("id", STRING), ("status", STRING)], label="the result of send_email"
        ),
        "send_webhook": object_of(
            [("id", STRING), ("status", STRING), ("response_status", INT.as_optional(True))],
            label="the result of send_webhook",
        ),
        "emit": object_of([("id", STRING), ("type", STRING)], label="the result of emit"),
    }
)


def assignable(want: Type, got: Type) -> bool:
    """Whether a value of type `got` may be passed where `want` is expected."""
    if want.kind == "any" or got.kind in ("any", "error", "null"):
        return True
    if want.kind in ("int", "decimal") and got.kind in ("int", "decimal"):
        return want.kind == "decimal" or got.kind == "int"
    if want.kind != got.kind:
        return False
    if want.values and got.values:
        return set(got.values) <= set(want.values)
    return True
