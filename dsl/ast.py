"""The syntax tree of rule files: frozen dataclasses, each with its source span."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, is_dataclass
from decimal import Decimal
from typing import NamedTuple

from dsl.frozen import quick_init

__all__ = [
    "Action",
    "Arg",
    "Attribute",
    "Binary",
    "Block",
    "Call",
    "CallStep",
    "CancelOn",
    "Comment",
    "Concurrency",
    "ConstDef",
    "Debounce",
    "Dedup",
    "Definition",
    "Description",
    "DurationLit",
    "Elif",
    "Emit",
    "EnumType",
    "EventDef",
    "Expr",
    "FailStep",
    "FieldDef",
    "Group",
    "HookDef",
    "IfStep",
    "Index",
    "ListExpr",
    "ListType",
    "Literal",
    "MapEntry",
    "MapExpr",
    "Member",
    "Module",
    "NamedStep",
    "NamedType",
    "ObjectType",
    "OnEvent",
    "OnHook",
    "OnManual",
    "OnSchedule",
    "Parallel",
    "Path",
    "RateLimitClause",
    "RetryClause",
    "RetryFrom",
    "SendEmail",
    "SendWebhook",
    "SetStep",
    "Span",
    "Step",
    "TemplateDef",
    "TimeoutClause",
    "TypeExpr",
    "Unary",
    "WaitDuration",
    "WaitFor",
    "WaitUntil",
    "WebhookDef",
    "WhenClause",
    "WorkflowDef",
]


class Span(NamedTuple):
    """Where a node is: 1-based line and column of its first and past-last character.

    A named tuple rather than a dataclass like the nodes: every node has one,
    and the parser makes them with `tuple.__new__`, without a Python call
    (`make_span`): a third of the cost of a dataclass's `__init__`.
    """

    file: str
    line: int
    column: int
    end_line: int
    end_column: int


# Span(*fields), made without the Python-level `__new__` of the named tuple.
make_span: Callable[[type[Span], tuple[str, int, int, int, int]], Span] = tuple.__new__


# ---- expressions


@dataclass(frozen=True, slots=True)
class Literal:
    span: Span
    value: str | int | Decimal | bool | None
    raw: str


@dataclass(frozen=True, slots=True)
class DurationLit:
    span: Span
    seconds: Decimal
    raw: str


@dataclass(frozen=True, slots=True)
class Path:
    """A dotted name such as `event.data.amount` or the pattern `investment.*`."""

    span: Span
    parts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Member:
    span: Span
    obj: Expr
    name: str


@dataclass(frozen=True, slots=True)
class Index:
    span: Span
    obj: Expr
    key: Expr


@dataclass(frozen=True, slots=True)
class ListExpr:
    span: Span
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class MapEntry:
    span: Span
    key: str
    quoted: bool
    value: Expr


@dataclass(frozen=True, slots=True)
class MapExpr:
    span: Span
    entries: tuple[MapEntry, ...]


@dataclass(frozen=True, slots=True)
class Unary:
    span: Span
    op: str
    operand: Expr


@dataclass(frozen=True, slots=True)
class Binary:
    span: Span
    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Arg:
    span: Span
    name: str | None
    value: Expr


@dataclass(frozen=True, slots=True)
class Call:
    span: Span
    func: str
    args: tuple[Arg, ...]


@dataclass(frozen=True, slots=True)
class Group:
    span: Span
    expr: Expr


Expr = (
    Literal
    | DurationLit
    | Path
    | Member
    | Index
    | ListExpr
    | MapExpr
    | Unary
    | Binary
    | Call
    | Group
)

# ---- catalog types


@dataclass(frozen=True, slots=True)
class NamedType:
    span: Span
    name: str


@dataclass(frozen=True, slots=True)
class ListType:
    span: Span
    item: TypeExpr


@dataclass(frozen=True, slots=True)
class EnumType:
    span: Span
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ObjectType:
    span: Span
    fields: tuple[FieldDef, ...]


TypeExpr = NamedType | ListType | EnumType | ObjectType


@dataclass(frozen=True, slots=True)
class FieldDef:
    span: Span
    name: str
    optional: bool
    type: TypeExpr
    default: Expr | None


# ---- block statements


@dataclass(frozen=True, slots=True)
class Attribute:
    span: Span
    name: str
    value: Expr


@dataclass(frozen=True, slots=True)
class Description:
    span: Span
    value: Expr


@dataclass(frozen=True, slots=True)
class WhenClause:
    span: Span
    expr: Expr


@dataclass(frozen=True, slots=True)
class TimeoutClause:
    span: Span
    duration: Expr


@dataclass(frozen=True, slots=True)
class RateLimitClause:
    span: Span
    count: Expr
    window: Expr


@dataclass(frozen=True, slots=True)
class RetryClause:
    """`retry N times[, exponential A .. B | every D | schedule [D, ...]]`."""

    span: Span
    attempts: Expr
    backoff: str | None
    delays: tuple[Expr, ...]


# ---- workflow triggers and options


@dataclass(frozen=True, slots=True)
class OnEvent:
    span: Span
    patterns: Expr
    when: Expr | None


@dataclass(frozen=True, slots=True)
class OnSchedule:
    span: Span
    cron: Expr
    timezone: Expr | None


@dataclass(frozen=True, slots=True)
class OnManual:
    span: Span


@dataclass(frozen=True, slots=True)
class OnHook:
    span: Span
    hook: str
    hook_span: Span
    when: Expr | None


@dataclass(frozen=True, slots=True)
class Concurrency:
    span: Span
    limit: Expr
    key: Expr | None


@dataclass(frozen=True, slots=True)
class Debounce:
    span: Span
    window: Expr
    key: Expr | None


@dataclass(frozen=True, slots=True)
class Dedup:
    span: Span
    key: Expr
    window: Expr | None


@dataclass(frozen=True, slots=True)
class CancelOn:
    span: Span
    patterns: Expr
    when: Expr | None


# ---- workflow steps


@dataclass(frozen=True, slots=True)
class Block:
    span: Span
    steps: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class SendEmail:
    span: Span
    template: str
    template_span: Span
    to: Expr
    variables: MapExpr | None
    options: tuple[RetryClause | TimeoutClause, ...]


@dataclass(frozen=True, slots=True)
class SendWebhook:
    span: Span
    webhook: str
    webhook_span: Span
    payload: MapExpr | None
    options: tuple[RetryClause | TimeoutClause, ...]


@dataclass(frozen=True, slots=True)
class Emit:
    span: Span
    event: Expr
    data: MapExpr | None
    options: tuple[RetryClause | TimeoutClause, ...]


@dataclass(frozen=True, slots=True)
class CallStep:
    span: Span
    action: str
    action_span: Span
    args: tuple[Arg, ...]
    options: tuple[RetryClause | TimeoutClause, ...]


@dataclass(frozen=True, slots=True)
class WaitFor:
    span: Span
    event: Expr
    where: Expr | None
    timeout: Expr
    on_timeout: Block | None


Action = SendEmail | SendWebhook | Emit | CallStep | WaitFor


@dataclass(frozen=True, slots=True)
class NamedStep:
    span: Span
    name: str
    action: Action


@dataclass(frozen=True, slots=True)
class Elif:
    span: Span
    condition: Expr
    body: Block


@dataclass(frozen=True, slots=True)
class IfStep:
    span: Span
    condition: Expr
    body: Block
    elifs: tuple[Elif, ...]
    orelse: Block | None


@dataclass(frozen=True, slots=True)
class Parallel:
    span: Span
    body: Block


@dataclass(frozen=True, slots=True)
class WaitDuration:
    span: Span
    duration: Expr


@dataclass(frozen=True, slots=True)
class WaitUntil:
    span: Span
    time: Expr


@dataclass(frozen=True, slots=True)
class SetStep:
    span: Span
    name: str
    value: Expr


@dataclass(frozen=True, slots=True)
class FailStep:
    span: Span
    message: Expr | None


@dataclass(frozen=True, slots=True)
class RetryFrom:
    span: Span
    step: str


Step = (
    Action
    | NamedStep
    | IfStep
    | Parallel
    | WaitDuration
    | WaitUntil
    | SetStep
    | FailStep
    | RetryFrom
)

# ---- top-level definitions

EventStmt = FieldDef | Attribute
WebhookStmt = Attribute | WhenClause | RetryClause | TimeoutClause | RateLimitClause
WorkflowStmt = (
    OnEvent
    | OnSchedule
    | OnManual
    | OnHook
    | TimeoutClause
    | Concurrency
    | Debounce
    | Dedup
    | CancelOn
    | Description
    | Step
)


@dataclass(frozen=True, slots=True)
class EventDef:
    span: Span
    name: str
    name_span: Span
    body: tuple[EventStmt, ...]


@dataclass(frozen=True, slots=True)
class WebhookDef:
    span: Span
    name: str
    name_span: Span
    body: tuple[WebhookStmt, ...]


@dataclass(frozen=True, slots=True)
class TemplateDef:
    span: Span
    name: str
    name_span: Span
    body: tuple[Attribute, ...]


@dataclass(frozen=True, slots=True)
class HookDef:
    span: Span
    name: str
    name_span: Span
    body: tuple[Attribute, ...]


@dataclass(frozen=True, slots=True)
class WorkflowDef:
    span: Span
    name: str
    name_span: Span
    body: tuple[WorkflowStmt, ...]


@dataclass(frozen=True, slots=True)
class ConstDef:
    span: Span
    name: str
    name_span: Span
    value: Expr


Definition = EventDef | WebhookDef | TemplateDef | HookDef | WorkflowDef | ConstDef


@dataclass(frozen=True, slots=True)
class Comment:
    """A `#` comment; kept for the formatter."""

    line: int
    column: int
    text: str


@dataclass(frozen=True, slots=True)
class Module:
    """One parsed rule file."""

    file: str
    definitions: tuple[Definition, ...]
    comments: tuple[Comment, ...]


# A large rule set makes several hundred thousand nodes.
for _node in list(globals().values()):
    if isinstance(_node, type) and is_dataclass(_node) and _node.__module__ == __name__:
        quick_init(_node)
del _node
