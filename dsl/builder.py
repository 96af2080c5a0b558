"""Parsed rules to `dsl.ast` nodes, with a span on every node.

Both parsers feed the same `Builder`: the fast one (`dsl.fastparse`) calls
it on each reduction, the Lark one transforms its tree through
`grammar.TreeBuilder`. Tokens reach the builder as plain lists
`[type, text, line, column, end_line, end_column]` (`Tok`), which cost far less
to make than Lark tokens; no built value is a list, so `type(x) is list` tells a
token apart.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from json.decoder import scanstring  # type: ignore[attr-defined]
from types import MappingProxyType
from typing import Any

from dsl import ast

__all__ = [
    "MAX_NESTING",
    "Builder",
    "LiteralError",
    "NestingError",
    "Tok",
    "token_span",
]

# A token: [type, text, line, column, end_line, end_column].
Tok = list[Any]

_UNITS = MappingProxyType(
    {
        "ms": Decimal("0.001"),
        "s": Decimal(1),
        "m": Decimal(60),
        "h": Decimal(3600),
        "d": Decimal(86400),
        "w": Decimal(604800),
    }
)
_DURATION = re.compile(r"(\d[\d_]*)(ms|s|m|h|d|w)")


MAX_NESTING = 100

_SPAN, _span = ast.Span, ast.make_span


class NestingError(Exception):
    """Rules nested deeper than MAX_NESTING levels (brackets, operators, blocks)."""

    def __init__(self, span: ast.Span) -> None:
        super().__init__(f"nested too deeply: more than {MAX_NESTING} levels")
        self.span = span


class LiteralError(Exception):
    """A literal the lexer accepted but that has no value (a bad escape)."""

    def __init__(self, token: Tok, message: str) -> None:
        super().__init__(message)
        self.token = token


def token_span(file: str, token: Tok) -> ast.Span:
    return _span(_SPAN, (file, token[2], token[3], token[4], token[5]))


@functools.lru_cache(maxsize=1024)  # rules repeat their durations
def _duration_seconds(raw: str) -> Decimal:
    match = _DURATION.fullmatch(raw)
    assert match is not None  # the lexer only produces well-formed durations
    return Decimal(match.group(1).replace("_", "")) * _UNITS[match.group(2)]


# Terminals that carry a value; every other token is punctuation (keywords,
# brackets, operators, newlines) and only counts for the span.
VALUE_TOKENS = frozenset({"NAME", "STRING", "INT", "DECIMAL", "DURATION", "OPTIONAL"})
# Rules whose method needs the punctuation itself: the operator rules.
RAW_RULES = frozenset({"comp_op", "add_op", "mul_op"})


def _start(child: object) -> tuple[int, int] | None:
    if type(child) is list:
        return None if child[0] == "_NL" else (child[2], child[3])
    if type(child) is _SPAN:  # the span beside a name in a (name, span) pair counts for nothing
        return None
    if isinstance(child, tuple) and child:
        return _start(child[-1] if isinstance(child[0], str) else child[0])
    span = getattr(child, "span", None)
    return (span.line, span.column) if isinstance(span, ast.Span) else None


def _end(child: object) -> tuple[int, int] | None:
    if type(child) is list:
        return None if child[0] == "_NL" else (child[4], child[5])
    if type(child) is _SPAN:
        return None
    if isinstance(child, tuple) and child:
        return _end(child[-1])
    span = getattr(child, "span", None)
    return (span.end_line, span.end_column) if isinstance(span, ast.Span) else None


def _at(children: Sequence[Any], index: int) -> Any:
    return children[index] if len(children) > index else None


def _options(items: Any) -> tuple[ast.RetryClause | ast.TimeoutClause, ...]:
    return tuple(items or ())


# What `Builder.shaped` needs to know of a rule: how to pick the kept children
# (None: all of them), where the built ones are (nodes, for the depth), whether
# the first and the last are tokens, and the Builder method that makes it.
Shape = tuple[
    Callable[[list[Any]], Sequence[Any]] | None,
    tuple[int, ...],
    bool,
    bool,
    Callable[[Any, ast.Span, Sequence[Any]], Any],
]


class Builder:
    """Build AST nodes; every method receives the node's span and its meaningful children.

    The parsers keep every token instead of propagating positions, which is
    much faster: the span of a node runs from its first to its last token, and
    punctuation is dropped here before the node's method sees its children.
    """

    def __init__(self, file: str) -> None:
        self.file = file
        self._depth: dict[int, int] = {}

    def node(self, rule: str, children: list[Any]) -> Any:
        """The value of grammar rule `rule` (its alias if it has one) over `children`."""
        raw = rule in RAW_RULES
        kept: list[Any] = []
        depth = 0
        depths = self._depth
        for child in children:
            if type(child) is list:
                if raw or child[0] in VALUE_TOKENS:
                    kept.append(child)
            else:
                kept.append(child)
                child_depth = depths.get(id(child), 0)
                if child_depth > depth:
                    depth = child_depth
        span = self._span_of(children)
        result = getattr(self, rule)(span, children if raw else kept)
        # Every later stage recurses over the tree, and so does evaluation at
        # run time: bounding the depth here keeps all of them within the stack.
        if depth >= MAX_NESTING:
            raise NestingError(span)
        depths[id(result)] = depth + 1
        return result

    def shaped(self, rule: str, shape: Shape, children: list[Any]) -> Any:
        """`node(rule, children)` for children of a known `shape` (see `shape_of`), faster."""
        pick, inner_at, token_first, token_last, method = shape
        depth = 0
        depths = self._depth
        for i in inner_at:
            child_depth = depths.get(id(children[i]), 0)
            if child_depth > depth:
                depth = child_depth
        # A node's span runs from its first child's start to its last child's
        # end: read straight off a token or a child node where the shape says
        # which it is, else found as `_span_of` finds it.
        span = None
        if token_first:
            first = children[0]
            line, column = first[2], first[3]
        else:
            inner = getattr(children[0], "span", None)
            if type(inner) is _SPAN:
                line, column = inner[1], inner[2]
            else:
                span = self._span_of(children)
        if span is None:
            if token_last:
                last = children[-1]
                span = _span(_SPAN, (self.file, line, column, last[4], last[5]))
            else:
                inner = getattr(children[-1], "span", None)
                if type(inner) is _SPAN:
                    span = _span(_SPAN, (self.file, line, column, inner[3], inner[4]))
                else:
                    span = self._span_of(children)
        result = method(self, span, children if pick is None else pick(children))
        if depth >= MAX_NESTING:
            raise NestingError(span)
        depths[id(result)] = depth + 1
        return result

    def _span_of(self, children: list[Any]) -> ast.Span:
        start = end = None
        for child in children:
            start = _start(child)
            if start is not None:
                break
        for child in reversed(children):
            end = _end(child)
            if end is not None:
                break
        first = start or (1, 1)
        last = end or first
        return _span(_SPAN, (self.file, first[0], first[1], last[0], last[1]))

    def _tok(self, token: Tok) -> ast.Span:
        return token_span(self.file, token)

    # ---- top level

    def start(self, span: ast.Span, c: Sequence[Any]) -> tuple[ast.Definition, ...]:
        return tuple(c)

    def expression(self, span: ast.Span, c: Sequence[Any]) -> ast.Expr:
        result: ast.Expr = c[0]
        return result

    def const_def(self, span: ast.Span, c: Sequence[Any]) -> ast.ConstDef:
        return ast.ConstDef(span, c[0][1], self._tok(c[0]), c[1])

    def dotted(self, span: ast.Span, c: Sequence[Tok]) -> tuple[str, ast.Span]:
        return ".".join(t[1] for t in c), span

    def event_def(self, span: ast.Span, c: Sequence[Any]) -> ast.EventDef:
        name, name_span = c[0]
        return ast.EventDef(span, name, name_span, tuple(c[1:]))

    def webhook_def(self, span: ast.Span, c: Sequence[Any]) -> ast.WebhookDef:
        return ast.WebhookDef(span, c[0][1], self._tok(c[0]), tuple(c[1:]))

    def template_def(self, span: ast.Span, c: Sequence[Any]) -> ast.TemplateDef:
        return ast.TemplateDef(span, c[0][1], self._tok(c[0]), tuple(c[1:]))

    def hook_def(self, span: ast.Span, c: Sequence[Any]) -> ast.HookDef:
        return ast.HookDef(span, c[0][1], self._tok(c[0]), tuple(c[1:]))

    def workflow_def(self, span: ast.Span, c: Sequence[Any]) -> ast.WorkflowDef:
        return ast.WorkflowDef(span, c[0][1], self._tok(c[0]), tuple(c[1:]))

    # ---- catalog

    def field(self, span: ast.Span, c: Sequence[Any]) -> ast.FieldDef:
        default = c[3] if len(c) > 3 else None
        return ast.FieldDef(span, c[0][1], c[1], c[2], default)

    def optional_mark(self, span: ast.Span, c: Sequence[Any]) -> bool:
        return bool(c)

    def named_type(self, span: ast.Span, c: Sequence[Tok]) -> ast.NamedType:
        return ast.NamedType(span, c[0][1])

    def list_type(self, span: ast.Span, c: Sequence[Any]) -> ast.ListType:
        return ast.ListType(span, c[0])

    def enum_type(self, span: ast.Span, c: Sequence[Tok]) -> ast.EnumType:
        return ast.EnumType(span, tuple(self._string(t) for t in c))

    def object_type(self, span: ast.Span, c: Sequence[Any]) -> ast.ObjectType:
        return ast.ObjectType(span, tuple(c))

    # ---- clauses

    def attribute(self, span: ast.Span, c: Sequence[Any]) -> ast.Attribute:
        return ast.Attribute(span, c[0][1], c[1])

    def description(self, span: ast.Span, c: Sequence[Any]) -> ast.Description:
        return ast.Description(span, c[0])

    def when_clause(self, span: ast.Span, c: Sequence[Any]) -> ast.WhenClause:
        return ast.WhenClause(span, c[0])

    def timeout_clause(self, span: ast.Span, c: Sequence[Any]) -> ast.TimeoutClause:
        return ast.TimeoutClause(span, c[0])

    def rate_limit_clause(self, span: ast.Span, c: Sequence[Any]) -> ast.RateLimitClause:
        return ast.RateLimitClause(span, c[0], c[1])

    def retry_clause(self, span: ast.Span, c: Sequence[Any]) -> ast.RetryClause:
        kind, delays = c[1] if len(c) > 1 else (None, ())
        return ast.RetryClause(span, c[0], kind, delays)

    def exponential(self, span: ast.Span, c: Sequence[Any]) -> tuple[str, tuple[ast.Expr, ...]]:
        return "exponential", (c[0], c[1])

    def fixed(self, span: ast.Span, c: Sequence[Any]) -> tuple[str, tuple[ast.Expr, ...]]:
        return "every", (c[0],)

    def schedule(self, span: ast.Span, c: Sequence[Any]) -> tuple[str, tuple[ast.Expr, ...]]:
        return "schedule", (c[0],)

    # ---- workflow triggers and options

    def on_event(self, span: ast.Span, c: Sequence[Any]) -> ast.OnEvent:
        return ast.OnEvent(span, c[0], _at(c, 1))

    def on_schedule(self, span: ast.Span, c: Sequence[Any]) -> ast.OnSchedule:
        return ast.OnSchedule(span, c[0], _at(c, 1))

    def on_manual(self, span: ast.Span, c: Sequence[Any]) -> ast.OnManual:
        return ast.OnManual(span)

    def on_hook(self, span: ast.Span, c: Sequence[Any]) -> ast.OnHook:
        return ast.OnHook(span, c[0][1], self._tok(c[0]), _at(c, 1))

    def concurrency(self, span: ast.Span, c: Sequence[Any]) -> ast.Concurrency:
        return ast.Concurrency(span, c[0], _at(c, 1))

    def debounce(self, span: ast.Span, c: Sequence[Any]) -> ast.Debounce:
        return ast.Debounce(span, c[0], _at(c, 1))

    def dedup(self, span: ast.Span, c: Sequence[Any]) -> ast.Dedup:
        return ast.Dedup(span, c[0], _at(c, 1))

    def cancel_on(self, span: ast.Span, c: Sequence[Any]) -> ast.CancelOn:
        return ast.CancelOn(span, c[0], _at(c, 1))

    # ---- steps

    def block(self, span: ast.Span, c: Sequence[Any]) -> ast.Block:
        return ast.Block(span, tuple(c))

    def step_options(self, span: ast.Span, c: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(c)

    def named_step(self, span: ast.Span, c: Sequence[Any]) -> ast.NamedStep:
        return ast.NamedStep(span, c[0][1], c[1])

    def send_email(self, span: ast.Span, c: Sequence[Any]) -> ast.SendEmail:
        variables = c[2] if len(c) == 4 else None
        return ast.SendEmail(span, c[0][1], self._tok(c[0]), c[1], variables, _options(c[-1]))

    def send_webhook(self, span: ast.Span, c: Sequence[Any]) -> ast.SendWebhook:
        payload = c[1] if len(c) == 3 else None
        return ast.SendWebhook(span, c[0][1], self._tok(c[0]), payload, _options(c[-1]))

    def emit(self, span: ast.Span, c: Sequence[Any]) -> ast.Emit:
        data = c[1] if len(c) == 3 else None
        return ast.Emit(span, c[0], data, _options(c[-1]))

    def call_step(self, span: ast.Span, c: Sequence[Any]) -> ast.CallStep:
        args = tuple(c[1:-1])
        return ast.CallStep(span, c[0][1], self._tok(c[0]), args, _options(c[-1]))

    def wait_for(self, span: ast.Span, c: Sequence[Any]) -> ast.WaitFor:
        on_timeout = c[-1] if isinstance(c[-1], ast.Block) else None
        c = c[:-1] if on_timeout is not None else c
        where = c[1] if len(c) == 3 else None
        return ast.WaitFor(span, c[0], where, c[-1], on_timeout)

    def if_step(self, span: ast.Span, c: Sequence[Any]) -> ast.IfStep:
        orelse = c[-1] if len(c) > 2 and isinstance(c[-1], ast.Block) else None
        c = c[:-1] if orelse is not None else c
        return ast.IfStep(span, c[0], c[1], tuple(c[2:]), orelse)

    def elif_branch(self, span: ast.Span, c: Sequence[Any]) -> ast.Elif:
        return ast.Elif(span, c[0], c[1])

    def parallel(self, span: ast.Span, c: Sequence[Any]) -> ast.Parallel:
        return ast.Parallel(span, c[0])

    def wait_duration(self, span: ast.Span, c: Sequence[Any]) -> ast.WaitDuration:
        return ast.WaitDuration(span, c[0])

    def wait_until(self, span: ast.Span, c: Sequence[Any]) -> ast.WaitUntil:
        return ast.WaitUntil(span, c[0])

    def set_step(self, span: ast.Span, c: Sequence[Any]) -> ast.SetStep:
        return ast.SetStep(span, c[0][1], c[1])

    def fail_step(self, span: ast.Span, c: Sequence[Any]) -> ast.FailStep:
        return ast.FailStep(span, _at(c, 0))

    def retry_from(self, span: ast.Span, c: Sequence[Any]) -> ast.RetryFrom:
        return ast.RetryFrom(span, c[0][1])

    # ---- expressions

    def _binary(self, span: ast.Span, op: str, left: ast.Expr, right: ast.Expr) -> ast.Binary:
        return ast.Binary(span, op, left, right)

    def or_(self, span: ast.Span, c: Sequence[Any]) -> ast.Binary:
        return self._binary(span, "or", c[0], c[1])

    def and_(self, span: ast.Span, c: Sequence[Any]) -> ast.Binary:
        return self._binary(span, "and", c[0], c[1])

    def coalesce(self, span: ast.Span, c: Sequence[Any]) -> ast.Binary:
        return self._binary(span, "??", c[0], c[1])

    def compare(self, span: ast.Span, c: Sequence[Any]) -> ast.Binary:
        return self._binary(span, c[1], c[0], c[2])

    def arith(self, span: ast.Span, c: Sequence[Any]) -> ast.Binary:
        return self._binary(span, c[1], c[0], c[2])

    def comp_op(self, span: ast.Span, c: Sequence[Tok]) -> str:
        return " ".join(t[1] for t in c)

    add_op = mul_op = comp_op

    def not_(self, span: ast.Span, c: Sequence[Any]) -> ast.Unary:
        return ast.Unary(span, "not", c[0])

    def exists(self, span: ast.Span, c: Sequence[Any]) -> ast.Unary:
        return ast.Unary(span, "exists", c[0])

    def neg(self, span: ast.Span, c: Sequence[Any]) -> ast.Unary:
        return ast.Unary(span, "-", c[0])

    def member(self, span: ast.Span, c: Sequence[Any]) -> ast.Expr:
        obj, name = c[0], c[1][1]
        if isinstance(obj, ast.Path):
            return ast.Path(span, (*obj.parts, name))
        return ast.Member(span, obj, name)

    def member_star(self, span: ast.Span, c: Sequence[Any]) -> ast.Expr:
        obj = c[0]
        if isinstance(obj, ast.Path):
            return ast.Path(span, (*obj.parts, "*"))
        return ast.Member(span, obj, "*")

    def index(self, span: ast.Span, c: Sequence[Any]) -> ast.Index:
        return ast.Index(span, c[0], c[1])

    def name(self, span: ast.Span, c: Sequence[Tok]) -> ast.Path:
        return ast.Path(span, (c[0][1],))

    def star(self, span: ast.Span, c: Sequence[Tok]) -> ast.Path:
        return ast.Path(span, ("*",))

    def call(self, span: ast.Span, c: Sequence[Any]) -> ast.Call:
        args = tuple(c[1:])
        return ast.Call(span, c[0][1], args)

    def arg(self, span: ast.Span, c: Sequence[Any]) -> ast.Arg:
        if len(c) == 1:
            return ast.Arg(span, None, c[0])
        return ast.Arg(span, c[0][1], c[1])

    def _string(self, token: Tok) -> str:
        # What json.loads does with a string, without its layers around the C
        # scanner: the lexer only makes tokens that are one whole "..." string.
        raw: str = token[1]
        try:
            value, end = scanstring(raw, 1)
        except ValueError:
            raise LiteralError(token, "invalid escape sequence in string") from None
        if end != len(raw) or not isinstance(value, str):  # pragma: no cover - see above
            raise LiteralError(token, "invalid string")
        return value

    def string(self, span: ast.Span, c: Sequence[Tok]) -> ast.Literal:
        return ast.Literal(span, self._string(c[0]), c[0][1])

    def integer(self, span: ast.Span, c: Sequence[Tok]) -> ast.Literal:
        return ast.Literal(span, int(c[0][1].replace("_", "")), c[0][1])

    def decimal(self, span: ast.Span, c: Sequence[Tok]) -> ast.Literal:
        return ast.Literal(span, Decimal(c[0][1].replace("_", "")), c[0][1])

    def duration(self, span: ast.Span, c: Sequence[Tok]) -> ast.DurationLit:
        return ast.DurationLit(span, _duration_seconds(c[0][1]), c[0][1])

    def true(self, span: ast.Span, c: Sequence[Any]) -> ast.Literal:
        return ast.Literal(span, True, "true")

    def false(self, span: ast.Span, c: Sequence[Any]) -> ast.Literal:
        return ast.Literal(span, False, "false")

    def null(self, span: ast.Span, c: Sequence[Any]) -> ast.Literal:
        return ast.Literal(span, None, "null")

    def list_expr(self, span: ast.Span, c: Sequence[Any]) -> ast.ListExpr:
        return ast.ListExpr(span, tuple(c))

    def map(self, span: ast.Span, c: Sequence[Any]) -> ast.MapExpr:
        return ast.MapExpr(span, tuple(c))

    def entry(self, span: ast.Span, c: Sequence[Any]) -> ast.MapEntry:
        key: Tok = c[0]
        quoted = key[0] == "STRING"
        text = self._string(key) if quoted else key[1]
        return ast.MapEntry(span, text, quoted, c[1])

    def group(self, span: ast.Span, c: Sequence[Any]) -> ast.Group:
        return ast.Group(span, c[0])
