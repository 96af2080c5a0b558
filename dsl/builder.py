"""Lark parse trees to `dsl.ast` nodes, with a span on every node."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from lark import Token, Transformer, v_args
from lark.tree import Meta

from dsl import ast

__all__ = ["Builder", "LiteralError", "token_span"]

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


class LiteralError(Exception):
    """A literal the lexer accepted but that has no value (a bad escape)."""

    def __init__(self, token: Token, message: str) -> None:
        super().__init__(message)
        self.token = token


def token_span(file: str, token: Token) -> ast.Span:
    return ast.Span(
        file,
        token.line or 1,
        token.column or 1,
        token.end_line or token.line or 1,
        token.end_column or (token.column or 1) + 1,
    )


def _duration_seconds(raw: str) -> Decimal:
    match = _DURATION.fullmatch(raw)
    assert match is not None  # the lexer only produces well-formed durations
    return Decimal(match.group(1).replace("_", "")) * _UNITS[match.group(2)]


def _options(items: Any) -> tuple[ast.RetryClause | ast.TimeoutClause, ...]:
    return tuple(items or ())


@v_args(meta=True)
class Builder(Transformer[Token, Any]):
    """Build AST nodes; every method receives Lark's position metadata."""

    def __init__(self, file: str) -> None:
        super().__init__()
        self.file = file

    def _span(self, meta: Meta) -> ast.Span:
        if meta.empty:
            return ast.Span(self.file, 1, 1, 1, 1)
        return ast.Span(self.file, meta.line, meta.column, meta.end_line, meta.end_column)

    def _tok(self, token: Token) -> ast.Span:
        return token_span(self.file, token)

    # ---- top level

    def start(self, meta: Meta, c: list[Any]) -> list[ast.Definition]:
        return c

    def expression(self, meta: Meta, c: list[Any]) -> ast.Expr:
        result: ast.Expr = c[0]
        return result

    def const_def(self, meta: Meta, c: list[Any]) -> ast.ConstDef:
        return ast.ConstDef(self._span(meta), str(c[0]), self._tok(c[0]), c[1])

    def dotted(self, meta: Meta, c: list[Token]) -> tuple[str, ast.Span]:
        return ".".join(str(t) for t in c), self._span(meta)

    def event_def(self, meta: Meta, c: list[Any]) -> ast.EventDef:
        name, name_span = c[0]
        return ast.EventDef(self._span(meta), name, name_span, tuple(c[1:]))

    def webhook_def(self, meta: Meta, c: list[Any]) -> ast.WebhookDef:
        return ast.WebhookDef(self._span(meta), str(c[0]), self._tok(c[0]), tuple(c[1:]))

    def template_def(self, meta: Meta, c: list[Any]) -> ast.TemplateDef:
        return ast.TemplateDef(self._span(meta), str(c[0]), self._tok(c[0]), tuple(c[1:]))

    def hook_def(self, meta: Meta, c: list[Any]) -> ast.HookDef:
        return ast.HookDef(self._span(meta), str(c[0]), self._tok(c[0]), tuple(c[1:]))

    def workflow_def(self, meta: Meta, c: list[Any]) -> ast.WorkflowDef:
        return ast.WorkflowDef(self._span(meta), str(c[0]), self._tok(c[0]), tuple(c[1:]))

    # ---- catalog

    def field(self, meta: Meta, c: list[Any]) -> ast.FieldDef:
        return ast.FieldDef(self._span(meta), str(c[0]), c[1], c[2], c[3])

    def optional_mark(self, meta: Meta, c: list[Any]) -> bool:
        return bool(c)

    def named_type(self, meta: Meta, c: list[Token]) -> ast.NamedType:
        return ast.NamedType(self._span(meta), str(c[0]))

    def list_type(self, meta: Meta, c: list[Any]) -> ast.ListType:
        return ast.ListType(self._span(meta), c[0])

    def enum_type(self, meta: Meta, c: list[Token]) -> ast.EnumType:
        return ast.EnumType(self._span(meta), tuple(self._string(t) for t in c))

    def object_type(self, meta: Meta, c: list[Any]) -> ast.ObjectType:
        return ast.ObjectType(self._span(meta), tuple(c))

    # ---- clauses

    def attribute(self, meta: Meta, c: list[Any]) -> ast.Attribute:
        return ast.Attribute(self._span(meta), str(c[0]), c[1])

    def description(self, meta: Meta, c: list[Any]) -> ast.Description:
        return ast.Description(self._span(meta), c[0])

    def when_clause(self, meta: Meta, c: list[Any]) -> ast.WhenClause:
        return ast.WhenClause(self._span(meta), c[0])

    def timeout_clause(self, meta: Meta, c: list[Any]) -> ast.TimeoutClause:
        return ast.TimeoutClause(self._span(meta), c[0])

    def rate_limit_clause(self, meta: Meta, c: list[Any]) -> ast.RateLimitClause:
        return ast.RateLimitClause(self._span(meta), c[0], c[1])

    def retry_clause(self, meta: Meta, c: list[Any]) -> ast.RetryClause:
        kind, delays = c[1] if c[1] is not None else (None, ())
        return ast.RetryClause(self._span(meta), c[0], kind, delays)

    def exponential(self, meta: Meta, c: list[Any]) -> tuple[str, tuple[ast.Expr, ...]]:
        return "exponential", (c[0], c[1])

    def fixed(self, meta: Meta, c: list[Any]) -> tuple[str, tuple[ast.Expr, ...]]:
        return "every", (c[0],)

    def schedule(self, meta: Meta, c: list[Any]) -> tuple[str, tuple[ast.Expr, ...]]:
        return "schedule", (c[0],)

    # ---- workflow triggers and options

    def on_event(self, meta: Meta, c: list[Any]) -> ast.OnEvent:
        return ast.OnEvent(self._span(meta), c[0], c[1])

    def on_schedule(self, meta: Meta, c: list[Any]) -> ast.OnSchedule:
        return ast.OnSchedule(self._span(meta), c[0], c[1])

    def on_manual(self, meta: Meta, c: list[Any]) -> ast.OnManual:
        return ast.OnManual(self._span(meta))

    def on_hook(self, meta: Meta, c: list[Any]) -> ast.OnHook:
        return ast.OnHook(self._span(meta), str(c[0]), self._tok(c[0]), c[1])

    def concurrency(self, meta: Meta, c: list[Any]) -> ast.Concurrency:
        return ast.Concurrency(self._span(meta), c[0], c[1])

    def debounce(self, meta: Meta, c: list[Any]) -> ast.Debounce:
        return ast.Debounce(self._span(meta), c[0], c[1])

    def dedup(self, meta: Meta, c: list[Any]) -> ast.Dedup:
        return ast.Dedup(self._span(meta), c[0], c[1])

    def cancel_on(self, meta: Meta, c: list[Any]) -> ast.CancelOn:
        return ast.CancelOn(self._span(meta), c[0], c[1])

    # ---- steps

    def block(self, meta: Meta, c: list[Any]) -> ast.Block:
        return ast.Block(self._span(meta), tuple(c))

    def step_options(self, meta: Meta, c: list[Any]) -> tuple[Any, ...]:
        return tuple(c)

    def named_step(self, meta: Meta, c: list[Any]) -> ast.NamedStep:
        return ast.NamedStep(self._span(meta), str(c[0]), c[1])

    def send_email(self, meta: Meta, c: list[Any]) -> ast.SendEmail:
        span = self._span(meta)
        return ast.SendEmail(span, str(c[0]), self._tok(c[0]), c[1], c[2], _options(c[3]))

    def send_webhook(self, meta: Meta, c: list[Any]) -> ast.SendWebhook:
        span = self._span(meta)
        return ast.SendWebhook(span, str(c[0]), self._tok(c[0]), c[1], _options(c[2]))

    def emit(self, meta: Meta, c: list[Any]) -> ast.Emit:
        return ast.Emit(self._span(meta), c[0], c[1], _options(c[2]))

    def call_step(self, meta: Meta, c: list[Any]) -> ast.CallStep:
        args = tuple(a for a in c[1:-1] if a is not None)
        return ast.CallStep(self._span(meta), str(c[0]), self._tok(c[0]), args, _options(c[-1]))

    def wait_for(self, meta: Meta, c: list[Any]) -> ast.WaitFor:
        return ast.WaitFor(self._span(meta), c[0], c[1], c[2], c[3])

    def if_step(self, meta: Meta, c: list[Any]) -> ast.IfStep:
        return ast.IfStep(self._span(meta), c[0], c[1], tuple(c[2:-1]), c[-1])

    def elif_branch(self, meta: Meta, c: list[Any]) -> ast.Elif:
        return ast.Elif(self._span(meta), c[0], c[1])

    def parallel(self, meta: Meta, c: list[Any]) -> ast.Parallel:
        return ast.Parallel(self._span(meta), c[0])

    def wait_duration(self, meta: Meta, c: list[Any]) -> ast.WaitDuration:
        return ast.WaitDuration(self._span(meta), c[0])

    def wait_until(self, meta: Meta, c: list[Any]) -> ast.WaitUntil:
        return ast.WaitUntil(self._span(meta), c[0])

    def set_step(self, meta: Meta, c: list[Any]) -> ast.SetStep:
        return ast.SetStep(self._span(meta), str(c[0]), c[1])

    def fail_step(self, meta: Meta, c: list[Any]) -> ast.FailStep:
        return ast.FailStep(self._span(meta), c[0])

    def retry_from(self, meta: Meta, c: list[Any]) -> ast.RetryFrom:
        return ast.RetryFrom(self._span(meta), str(c[0]))

    # ---- expressions

    def _binary(self, meta: Meta, op: str, left: ast.Expr, right: ast.Expr) -> ast.Binary:
        return ast.Binary(self._span(meta), op, left, right)

    def or_(self, meta: Meta, c: list[Any]) -> ast.Binary:
        return self._binary(meta, "or", c[0], c[1])

    def and_(self, meta: Meta, c: list[Any]) -> ast.Binary:
        return self._binary(meta, "and", c[0], c[1])

    def coalesce(self, meta: Meta, c: list[Any]) -> ast.Binary:
        return self._binary(meta, "??", c[0], c[1])

    def compare(self, meta: Meta, c: list[Any]) -> ast.Binary:
        return self._binary(meta, c[1], c[0], c[2])

    def arith(self, meta: Meta, c: list[Any]) -> ast.Binary:
        return self._binary(meta, c[1], c[0], c[2])

    def comp_op(self, meta: Meta, c: list[Token]) -> str:
        return " ".join(str(t) for t in c)

    add_op = mul_op = comp_op

    def not_(self, meta: Meta, c: list[Any]) -> ast.Unary:
        return ast.Unary(self._span(meta), "not", c[0])

    def exists(self, meta: Meta, c: list[Any]) -> ast.Unary:
        return ast.Unary(self._span(meta), "exists", c[0])

    def neg(self, meta: Meta, c: list[Any]) -> ast.Unary:
        return ast.Unary(self._span(meta), "-", c[0])

    def member(self, meta: Meta, c: list[Any]) -> ast.Expr:
        obj, name = c[0], str(c[1])
        if isinstance(obj, ast.Path):
            return ast.Path(self._span(meta), (*obj.parts, name))
        return ast.Member(self._span(meta), obj, name)

    def member_star(self, meta: Meta, c: list[Any]) -> ast.Expr:
        obj = c[0]
        if isinstance(obj, ast.Path):
            return ast.Path(self._span(meta), (*obj.parts, "*"))
        return ast.Member(self._span(meta), obj, "*")

    def index(self, meta: Meta, c: list[Any]) -> ast.Index:
        return ast.Index(self._span(meta), c[0], c[1])

    def name(self, meta: Meta, c: list[Token]) -> ast.Path:
        return ast.Path(self._span(meta), (str(c[0]),))

    def star(self, meta: Meta, c: list[Token]) -> ast.Path:
        return ast.Path(self._span(meta), ("*",))

    def call(self, meta: Meta, c: list[Any]) -> ast.Call:
        args = tuple(a for a in c[1:] if a is not None)
        return ast.Call(self._span(meta), str(c[0]), args)

    def arg(self, meta: Meta, c: list[Any]) -> ast.Arg:
        return ast.Arg(self._span(meta), None if c[0] is None else str(c[0]), c[1])

    def _string(self, token: Token) -> str:
        try:
            value = json.loads(str(token))
        except ValueError:
            raise LiteralError(token, "invalid escape sequence in string") from None
        if not isinstance(value, str):  # pragma: no cover - the lexer admits only strings
            raise LiteralError(token, "invalid string")
        return value

    def string(self, meta: Meta, c: list[Token]) -> ast.Literal:
        return ast.Literal(self._span(meta), self._string(c[0]), str(c[0]))

    def integer(self, meta: Meta, c: list[Token]) -> ast.Literal:
        return ast.Literal(self._span(meta), int(str(c[0]).replace("_", "")), str(c[0]))

    def decimal(self, meta: Meta, c: list[Token]) -> ast.Literal:
        return ast.Literal(self._span(meta), Decimal(str(c[0]).replace("_", "")), str(c[0]))

    def duration(self, meta: Meta, c: list[Token]) -> ast.DurationLit:
        return ast.DurationLit(self._span(meta), _duration_seconds(str(c[0])), str(c[0]))

    def true(self, meta: Meta, c: list[Any]) -> ast.Literal:
        return ast.Literal(self._span(meta), True, "true")

    def false(self, meta: Meta, c: list[Any]) -> ast.Literal:
        return ast.Literal(self._span(meta), False, "false")

    def null(self, meta: Meta, c: list[Any]) -> ast.Literal:
        return ast.Literal(self._span(meta), None, "null")

    def list_expr(self, meta: Meta, c: list[Any]) -> ast.ListExpr:
        return ast.ListExpr(self._span(meta), tuple(x for x in c if x is not None))

    def map(self, meta: Meta, c: list[Any]) -> ast.MapExpr:
        return ast.MapExpr(self._span(meta), tuple(c))

    def entry(self, meta: Meta, c: list[Any]) -> ast.MapEntry:
        key: Token = c[0]
        quoted = key.type == "STRING"
        text = self._string(key) if quoted else str(key)
        return ast.MapEntry(self._span(meta), text, quoted, c[1])

    def group(self, meta: Meta, c: list[Any]) -> ast.Group:
        return ast.Group(self._span(meta), c[0])
