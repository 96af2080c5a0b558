"""The expression type checker: every expression gets a static type or a diagnostic.

A sub-expression that already failed has the type `error`, which every check
accepts, so one mistake produces one diagnostic, not a cascade.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from dsl import ast
from dsl.diagnostics import did_you_mean
from dsl.evaluate import regex_problem
from dsl.printer import source
from dsl.types import (
    ANY,
    BOOL,
    DECIMAL,
    DURATION,
    ERROR,
    INT,
    NULL,
    STRING,
    TIMESTAMP,
    Type,
    comparable,
    is_numeric,
    join,
    list_of,
    object_of,
)

__all__ = [
    "ENV_NAME",
    "FUNCTIONS",
    "Report",
    "Scope",
    "check_enum_value",
    "check_expr",
    "did_you_mean",  # re-exported: callers outside the checker import it from here
    "env_ref",
    "walk",
]

Report = Callable[[str, str, ast.Span, str | None], None]

FUNCTIONS = ("env", "len", "lower", "now", "upper")
ENV_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
_ORDERED = ("int", "decimal", "timestamp", "duration", "string")
_TIME_ARITHMETIC = MappingProxyType(
    {
        ("+", "string", "string"): STRING,
        ("+", "timestamp", "duration"): TIMESTAMP,
        ("-", "timestamp", "duration"): TIMESTAMP,
        ("+", "duration", "timestamp"): TIMESTAMP,
        ("-", "timestamp", "timestamp"): DURATION,
        ("+", "duration", "duration"): DURATION,
        ("-", "duration", "duration"): DURATION,
    }
)


@dataclass(frozen=True, slots=True)
class Scope:
    """The names an expression may use, with their types.

    `suggest`: other names worth offering for a misspelt one (the consts,
    already substituted by the time an expression is checked).
    """

    names: Mapping[str, Type]
    suggest: tuple[str, ...] = ()


def env_ref(node: ast.Expr) -> tuple[str, str | None] | None:
    """The variable and default of an `env("NAME"[, "default"])` node; None for any other."""
    if isinstance(node, ast.Call) and node.func == "env" and node.args:
        name = node.args[0].value
        if isinstance(name, ast.Literal) and isinstance(name.value, str):
            default = None
            if len(node.args) > 1:
                d = node.args[1].value
                default = d.value if isinstance(d, ast.Literal) else None
            return name.value, default if isinstance(default, str) else None
    return None


# The sub-expressions of each kind of node, in reverse order (they go on a
# stack); leaves (literals, paths) have none.
_CHILDREN: Mapping[type, Callable[[Any], Iterable[ast.Expr]]] = MappingProxyType(
    {
        ast.Binary: lambda n: (n.right, n.left),
        ast.Unary: lambda n: (n.operand,),
        ast.Group: lambda n: (n.expr,),
        ast.Member: lambda n: (n.obj,),
        ast.Index: lambda n: (n.key, n.obj),
        ast.ListExpr: lambda n: reversed(n.items),
        ast.MapExpr: lambda n: [e.value for e in reversed(n.entries)],
        ast.Call: lambda n: [a.value for a in reversed(n.args)],
    }
)


def walk(expr: ast.Expr) -> Iterator[ast.Expr]:
    """The expression and all its sub-expressions."""
    stack = [expr]
    children = _CHILDREN.get
    while stack:
        node = stack.pop()
        yield node
        inner = children(type(node))
        if inner is not None:
            stack += inner(node)


def check_enum_value(t: Type, expr: ast.Expr, report: Report) -> None:
    """Report `expr` if it is a string literal and `t` an enum without that value (E023)."""
    literal = _unwrap(expr)
    if not t.values or not isinstance(literal, ast.Literal):
        return
    if isinstance(literal.value, str) and literal.value not in t.values:
        hint = did_you_mean(literal.value, t.values) or "one of " + ", ".join(
            f'"{v}"' for v in t.values
        )
        report("E023", f'"{literal.value}" is not a value of {t.describe()}', literal.span, hint)


def check_expr(expr: ast.Expr, scope: Scope, report: Report) -> Type:
    """The static type of `expr`; problems go to `report(code, message, span, hint)`."""
    return _Checker(scope, report).check(expr)


class _Checker:
    def __init__(self, scope: Scope, report: Report) -> None:
        self.scope = scope
        self.report = report

    def error(self, code: str, message: str, span: ast.Span, hint: str | None = None) -> Type:
        self.report(code, message, span, hint)
        return ERROR

    def check(self, expr: ast.Expr) -> Type:
        if isinstance(expr, ast.Literal):
            return _literal_type(expr)
        if isinstance(expr, ast.DurationLit):
            return DURATION
        if isinstance(expr, ast.Group):
            return self.check(expr.expr)
        if isinstance(expr, ast.Path):
            return self.path(expr)
        if isinstance(expr, ast.Member):
            return self.member(self.check(expr.obj), expr.name, expr.span)
        if isinstance(expr, ast.Index):
            return self.index(expr)
        if isinstance(expr, ast.ListExpr):
            item = NULL
            for element in expr.items:
                item = join(item, self.check(element)) if item is not NULL else self.check(element)
            return list_of(ANY if item is NULL else item)
        if isinstance(expr, ast.MapExpr):
            return object_of((e.key, self.check(e.value)) for e in expr.entries)
        if isinstance(expr, ast.Call):
            return self.call(expr)
        if isinstance(expr, ast.Unary):
            return self.unary(expr)
        return self.binary(expr)

    # ---- names and fields

    def path(self, expr: ast.Path) -> Type:
        if "*" in expr.parts:
            return self.error(
                "E045",
                f"'{'.'.join(expr.parts)}' is an event pattern, not a value",
                expr.span,
                "patterns belong in `events = [...]`, `on ...` or `wait for ...`",
            )
        root = expr.parts[0]
        current = self.scope.names.get(root)
        if current is None:
            hint = did_you_mean(root, [*self.scope.names, *self.scope.suggest])
            return self.error("E016", f"unknown name '{root}'", expr.span, hint)
        for part in expr.parts[1:]:
            current = self.member(current, part, expr.span)
        return current

    def member(self, obj: Type, name: str, span: ast.Span) -> Type:
        if obj.kind in ("any", "error"):
            return obj
        if obj.kind != "object":
            return self.error("E020", f"a {obj.describe()} has no field '{name}'", span)
        found = obj.field(name)
        if found is None:
            if obj.open:
                return ANY
            where = f" on {obj.label}" if obj.label else ""
            hint = did_you_mean(name, obj.field_names())
            return self.error("E012", f"unknown field '{name}'{where}", span, hint)
        return found.as_optional(True) if obj.optional else found

    def index(self, expr: ast.Index) -> Type:
        obj, key = self.check(expr.obj), self.check(expr.key)
        if "error" in (obj.kind, key.kind) or obj.kind == "any":
            return ANY if obj.kind == "any" else ERROR
        if obj.kind == "list" and key.kind in ("int", "any"):
            return (obj.item or ANY).as_optional(True)
        if obj.kind == "object" and key.kind in ("string", "any"):
            if isinstance(expr.key, ast.Literal) and isinstance(expr.key.value, str):
                return self.member(obj, expr.key.value, expr.key.span)
            return ANY
        return self.error(
            "E020", f"cannot index a {obj.describe()} with a {key.describe()}", expr.span
        )

    # ---- calls

    def call(self, expr: ast.Call) -> Type:
        name, args = expr.func, expr.args
        if name not in FUNCTIONS:
            hint = did_you_mean(name, FUNCTIONS)
            return self.error("E017", f"unknown function '{name}'", expr.span, hint)
        for arg in args:
            if arg.name is not None:
                return self.error("E021", f"{name}() takes no named arguments", arg.span)
        types = [self.check(a.value) for a in args]
        if name == "now":
            return TIMESTAMP if self.arity(expr, 0, 0) else ERROR
        if name == "env":
            return self.env(expr)
        if not self.arity(expr, 1, 1):
            return ERROR
        (t,) = types
        if t.kind in ("error", "any"):
            return INT if name == "len" else STRING
        if name == "len":
            if t.kind in ("string", "list", "object"):
                return INT.as_optional(t.optional)
            return self.error(
                "E021", f"len() needs a string, list or map, got {t.describe()}", expr.span
            )
        if t.kind != "string":
            return self.error("E021", f"{name}() needs a string, got {t.describe()}", expr.span)
        return STRING.as_optional(t.optional)

    def arity(self, expr: ast.Call, low: int, high: int) -> bool:
        if low <= len(expr.args) <= high:
            return True
        want = str(low) if low == high else f"{low} or {high}"
        plural = "" if want == "1" else "s"
        self.error(
            "E021", f"{expr.func}() takes {want} argument{plural}, got {len(expr.args)}", expr.span
        )
        return False

    def env(self, expr: ast.Call) -> Type:
        if not self.arity(expr, 1, 2):
            return ERROR
        for arg in expr.args:
            if not (isinstance(arg.value, ast.Literal) and isinstance(arg.value.value, str)):
                return self.error("E021", "env() arguments must be string literals", arg.span)
        name = expr.args[0].value
        assert isinstance(name, ast.Literal) and isinstance(name.value, str)
        if not ENV_NAME.fullmatch(name.value):
            hint = "use upper case letters, digits and '_', e.g. CRM_WEBHOOK_URL"
            return self.error(
                "E055", f"invalid environment variable name {name.raw}", name.span, hint
            )
        return STRING

    # ---- operators

    def unary(self, expr: ast.Unary) -> Type:
        if expr.op == "exists":
            if not isinstance(_unwrap(expr.operand), ast.Path | ast.Member | ast.Index):
                return self.error(
                    "E020", "'exists' needs a field, e.g. exists event.data.referrer", expr.span
                )
            self.check(expr.operand)
            return BOOL
        t = self.check(expr.operand)
        if expr.op == "not":
            return self.boolean(t, expr.operand, "not")
        if t.kind in ("int", "decimal", "duration", "any", "error"):
            return t
        return self.error("E020", f"cannot negate a {t.describe()}", expr.span)

    def boolean(self, t: Type, expr: ast.Expr, op: str) -> Type:
        if t.kind in ("bool", "any", "error", "null"):
            return BOOL if t.kind != "error" else ERROR
        return self.error(
            "E020",
            f"'{op}' needs true or false, got {t.describe()} ({source(expr)})",
            expr.span,
            "there is no truthiness: compare explicitly, e.g. x != null or len(x) > 0",
        )

    def binary(self, expr: ast.Binary) -> Type:
        op = expr.op
        left, right = self.check(expr.left), self.check(expr.right)
        if op in ("and", "or"):
            a, b = self.boolean(left, expr.left, op), self.boolean(right, expr.right, op)
            return ERROR if ERROR in (a, b) else BOOL
        if "error" in (left.kind, right.kind):
            return ERROR
        if op == "??":
            return join(left.as_optional(False), right).as_optional(right.optional)
        if op in ("+", "-", "*", "/", "%"):
            return self.arith(expr, left, right)
        return self.compare(expr, left, right)

    def arith(self, expr: ast.Binary, left: Type, right: Type) -> Type:
        op, kinds = expr.op, (left.kind, right.kind)
        optional = left.optional or right.optional
        result: Type | None = None
        if "any" in kinds:
            result = ANY
        elif is_numeric(left) and is_numeric(right):
            both_int = kinds == ("int", "int") and op != "/"
            result = INT if both_int else DECIMAL
        elif (is_numeric(right) and left.kind == "duration" and op in ("*", "/")) or (
            is_numeric(left) and right.kind == "duration" and op == "*"
        ):
            result = DURATION
        else:
            result = _TIME_ARITHMETIC.get((op, *kinds))
        if result is None:
            verb = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide", "%": "take"}[op]
            message = f"cannot {verb} {left.describe()} and {right.describe()} ('{op}')"
            return self.error("E020", message, expr.span)
        return result.as_optional(optional)

    def compare(self, expr: ast.Binary, left: Type, right: Type) -> Type:
        op = expr.op
        if op in ("==", "!="):
            if not comparable(left, right):
                return self.mismatch(expr, left, right)
            self.enum_value(left, expr.right)
            self.enum_value(right, expr.left)
        elif op in ("<", "<=", ">", ">="):
            ok = "any" in (left.kind, right.kind) or (
                (left.kind == right.kind or (is_numeric(left) and is_numeric(right)))
                and left.kind in _ORDERED
            )
            if not ok:
                return self.mismatch(expr, left, right)
        elif op in ("in", "not in"):
            return self.membership(expr, left, right)
        else:
            return self.matching(expr, left, right)
        return BOOL

    def mismatch(self, expr: ast.Binary, left: Type, right: Type) -> Type:
        hint = None
        literal = _unwrap(expr.right)
        if is_numeric(left) and isinstance(literal, ast.Literal) and isinstance(literal.value, str):
            hint = f"write the number without quotes: {literal.value}"
        message = f"cannot compare {left.describe()} with {right.describe()} ('{expr.op}')"
        return self.error("E020", message, expr.span, hint)

    def enum_value(self, t: Type, other: ast.Expr) -> None:
        check_enum_value(t, other, self.report)

    def membership(self, expr: ast.Binary, left: Type, right: Type) -> Type:
        if right.kind == "any" or left.kind == "any":
            return BOOL
        if right.kind == "list":
            item = right.item or ANY
            if not comparable(left, item):
                return self.mismatch(expr, left, right)
            if isinstance(expr.right, ast.ListExpr):
                for element in expr.right.items:
                    self.enum_value(left, element)
            return BOOL
        if right.kind in ("string", "object") and left.kind == "string":
            return BOOL
        message = f"'{expr.op}' needs a list, string or map on the right, got {right.describe()}"
        return self.error("E020", message, expr.right.span)

    def matching(self, expr: ast.Binary, left: Type, right: Type) -> Type:
        for side, t in ((expr.left, left), (expr.right, right)):
            if t.kind not in ("string", "any"):
                message = f"'{expr.op}' needs strings, got {t.describe()}"
                return self.error("E020", message, side.span)
        if expr.op == "matches":
            pattern = _unwrap(expr.right)
            if not (isinstance(pattern, ast.Literal) and isinstance(pattern.value, str)):
                message = "the pattern of 'matches' must be a string literal"
                return self.error("E051", message, expr.right.span)
            problem = regex_problem(pattern.value)
            if problem:
                return self.error("E051", problem, pattern.span)
        return BOOL


def _unwrap(expr: ast.Expr) -> ast.Expr:
    while isinstance(expr, ast.Group):
        expr = expr.expr
    return expr


def _literal_type(lit: ast.Literal) -> Type:
    value = lit.value
    if value is None:
        return NULL
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, str):
        return STRING
    if isinstance(value, int):
        return INT
    return DECIMAL
