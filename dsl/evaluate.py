"""Expressions compiled to Python closures, evaluated totally.

No `eval`, no `exec`, no attribute access: values are looked up in dicts and
lists only. Evaluation never raises for any input: a missing field, a value of
the wrong type, a division by zero or an overflow all give `None` (null), and a
comparison that makes no sense is false.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from types import MappingProxyType

from dsl import ast

__all__ = [
    "MAX_REGEX",
    "MAX_SUBJECT",
    "Context",
    "Evaluator",
    "compile_expr",
    "regex_problem",
    "truthy",
]

# Regex and glob subjects longer than this never match: bounds the work a
# single `when` can cause, whatever the payload.
MAX_SUBJECT = 10_000
MAX_REGEX = 512
# A quantified group that itself contains a quantifier, e.g. (a+)+: the classic
# catastrophic-backtracking shape. Refused rather than risk a hanging `when`.
_NESTED_QUANTIFIER = re.compile(r"\((?:[^()\\]|\\.)*[+*}]\)[+*{]")
# A repeated group of alternatives, e.g. (a|aa)+: overlapping alternatives
# backtrack the same way.
_REPEATED_ALTERNATION = re.compile(r"\((?:[^()\\]|\\.)*\|(?:[^()\\]|\\.)*\)[+*{]")
_Fail = (ArithmeticError, TypeError, ValueError, OverflowError, InvalidOperation)


@dataclass(frozen=True, slots=True)
class Context:
    """What an expression sees: named values (`event`, step results), the time, the environment."""

    values: Mapping[str, object]
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    env: Mapping[str, str] = field(default_factory=dict)


Evaluator = Callable[[Context], object]


def truthy(value: object) -> bool:
    """Conditions hold only when they evaluate to exactly `true`."""
    return value is True


def regex_problem(pattern: str) -> str | None:
    """Why a regular expression is refused, or None when it is acceptable."""
    if len(pattern) > MAX_REGEX:
        return f"regular expression is longer than {MAX_REGEX} characters"
    if _NESTED_QUANTIFIER.search(pattern):
        return "nested quantifiers such as (a+)+ can take exponential time"
    if _REPEATED_ALTERNATION.search(pattern):
        return "repeated alternatives such as (a|aa)+ can take exponential time"
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"invalid regular expression: {exc}"
    return None


def compile_expr(expr: ast.Expr) -> Evaluator:
    """Compile a checked expression into a closure `Context -> value`."""
    return _compile(expr)


def _compile(expr: ast.Expr) -> Evaluator:
    if isinstance(expr, ast.Literal):
        value = expr.value
        return lambda ctx: value
    if isinstance(expr, ast.DurationLit):
        delta = timedelta(seconds=float(expr.seconds))
        return lambda ctx: delta
    if isinstance(expr, ast.Group):
        return _compile(expr.expr)
    if isinstance(expr, ast.Path):
        return _path(expr.parts)
    if isinstance(expr, ast.Member):
        obj, name = _compile(expr.obj), expr.name
        return lambda ctx: _get(obj(ctx), name)
    if isinstance(expr, ast.Index):
        obj, key = _compile(expr.obj), _compile(expr.key)
        return lambda ctx: _get(obj(ctx), key(ctx))
    if isinstance(expr, ast.ListExpr):
        items = [_compile(i) for i in expr.items]
        return lambda ctx: [i(ctx) for i in items]
    if isinstance(expr, ast.MapExpr):
        entries = [(e.key, _compile(e.value)) for e in expr.entries]
        return lambda ctx: {k: v(ctx) for k, v in entries}
    if isinstance(expr, ast.Call):
        return _call(expr)
    if isinstance(expr, ast.Unary):
        return _unary(expr)
    return _binary(expr)


def _path(parts: tuple[str, ...]) -> Evaluator:
    root, rest = parts[0], parts[1:]

    def lookup(ctx: Context) -> object:
        value = ctx.values.get(root)
        for part in rest:
            if not isinstance(value, dict):
                return None
            value = value.get(part)
        return value

    return lookup


def _get(obj: object, key: object) -> object:
    if isinstance(obj, dict) and isinstance(key, str):
        return obj.get(key)
    if isinstance(obj, list) and isinstance(key, int) and not isinstance(key, bool):
        return obj[key] if -len(obj) <= key < len(obj) else None
    return None


def _call(expr: ast.Call) -> Evaluator:
    args = [_compile(a.value) for a in expr.args]
    if expr.func == "now":
        return lambda ctx: ctx.now
    if expr.func == "env":
        name = args[0] if args else (lambda ctx: None)
        default = args[1] if len(args) > 1 else (lambda ctx: None)

        def env(ctx: Context) -> object:
            key = name(ctx)
            return ctx.env.get(key, default(ctx)) if isinstance(key, str) else None

        return env
    arg = args[0] if args else (lambda ctx: None)
    if expr.func == "len":

        def length(ctx: Context) -> object:
            value = arg(ctx)
            return len(value) if isinstance(value, str | list | dict) else None

        return length
    upper = expr.func == "upper"

    def case(ctx: Context) -> object:
        value = arg(ctx)
        if not isinstance(value, str):
            return None
        return value.upper() if upper else value.lower()

    return case


def _unary(expr: ast.Unary) -> Evaluator:
    operand = _compile(expr.operand)
    if expr.op == "exists":
        return lambda ctx: operand(ctx) is not None
    if expr.op == "not":
        return lambda ctx: operand(ctx) is not True

    def negate(ctx: Context) -> object:
        value = operand(ctx)
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal | timedelta):
            return None
        return -value

    return negate


def _binary(expr: ast.Binary) -> Evaluator:
    left, right, op = _compile(expr.left), _compile(expr.right), expr.op
    if op == "and":
        return lambda ctx: left(ctx) is True and right(ctx) is True
    if op == "or":
        return lambda ctx: left(ctx) is True or right(ctx) is True
    if op == "??":

        def coalesce(ctx: Context) -> object:
            value = left(ctx)
            return right(ctx) if value is None else value

        return coalesce
    if op == "matches":
        return _matcher(left, expr.right, search=True)
    if op == "like":
        return _matcher(left, expr.right, search=False)
    func = _OPERATORS[op]
    return lambda ctx: func(left(ctx), right(ctx))


def _matcher(left: Evaluator, pattern_expr: ast.Expr, *, search: bool) -> Evaluator:
    while isinstance(pattern_expr, ast.Group):
        pattern_expr = pattern_expr.expr
    if isinstance(pattern_expr, ast.Literal) and isinstance(pattern_expr.value, str):
        text = pattern_expr.value
        if search and regex_problem(text) is not None:
            return lambda ctx: False
        compiled = re.compile(text if search else fnmatch.translate(text))
        method = compiled.search if search else compiled.match

        def match_literal(ctx: Context) -> object:
            value = left(ctx)
            return isinstance(value, str) and len(value) <= MAX_SUBJECT and bool(method(value))

        return match_literal
    pattern = _compile(pattern_expr)

    def match_dynamic(ctx: Context) -> object:
        value, glob = left(ctx), pattern(ctx)
        if not (isinstance(value, str) and isinstance(glob, str)) or len(value) > MAX_SUBJECT:
            return False
        return fnmatch.fnmatchcase(value, glob) if len(glob) <= 512 else False

    return match_dynamic


# ---- total operators on JSON-like values


def _number(value: object) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if value == value and abs(value) != float("inf") else None
    return None


def _timestamp(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and 10 <= len(value) <= 40:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _pair(a: object, b: object) -> tuple[object, object] | None:
    """Bring two values to one comparable kind, or None when they have none."""
    na, nb = _number(a), _number(b)
    if na is not None and nb is not None:
        return na, nb
    if isinstance(a, datetime) or isinstance(b, datetime):
        ta, tb = _timestamp(a), _timestamp(b)
        return (ta, tb) if ta is not None and tb is not None else None
    if type(a) is type(b) and isinstance(a, str | bool | timedelta | list | dict):
        return a, b
    return None


# Same-type values compare directly; the general path converts numbers to Decimal.
# Floats are left to it for ordering, which refuses NaN.
_FAST = (int, str, float)
_FAST_ORDER = (int, str)


def _eq(a: object, b: object) -> bool:
    if a is None or b is None:
        return a is b
    kind = type(a)
    if kind is type(b) and kind in _FAST:
        return a == b
    pair = _pair(a, b)
    if pair is None:
        return False
    x, y = pair
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(_eq(i, j) for i, j in zip(x, y, strict=True))
    return x == y


def _order(a: object, b: object, test: Callable[[int], bool]) -> bool:
    kind = type(a)
    if kind is type(b) and kind in _FAST_ORDER:
        x, y = a, b
    else:
        pair = _pair(a, b)
        if pair is None:
            return False
        x, y = pair
    if isinstance(x, bool | list | dict):
        return False
    try:
        sign = (x > y) - (x < y)  # type: ignore[operator]
    except _Fail:
        return False
    return test(sign)


def _contains(a: object, b: object) -> bool:
    if isinstance(b, list):
        return any(_eq(a, item) for item in b)
    if isinstance(b, str) and isinstance(a, str):
        return a in b
    if isinstance(b, dict) and isinstance(a, str):
        return a in b
    return False


def _arith(op: str) -> Callable[[object, object], object]:
    def apply(a: object, b: object) -> object:
        try:
            return _arith_values(op, a, b)
        except _Fail:
            return None

    return apply


def _arith_values(op: str, a: object, b: object) -> object:
    na, nb = _number(a), _number(b)
    if na is not None and nb is not None:
        if op == "+":
            result = na + nb
        elif op == "-":
            result = na - nb
        elif op == "*":
            result = na * nb
        elif op == "/":
            return None if nb == 0 else na / nb
        else:
            return None if nb == 0 else na % nb
        both_int = isinstance(a, int) and isinstance(b, int)
        return int(result) if both_int else result
    if op == "+" and isinstance(a, str) and isinstance(b, str):
        return a + b if len(a) + len(b) <= 1_000_000 else None
    ta = _timestamp(a) if not isinstance(a, timedelta) else None
    if isinstance(b, timedelta):
        if ta is not None and op in ("+", "-"):
            return ta + b if op == "+" else ta - b
        if isinstance(a, timedelta) and op in ("+", "-"):
            return a + b if op == "+" else a - b
    if op == "+" and isinstance(a, timedelta):
        tb = _timestamp(b)
        return tb + a if tb is not None else None
    if op == "-" and ta is not None:
        tb = _timestamp(b)
        return ta - tb if tb is not None else None
    if isinstance(a, timedelta) and nb is not None and op in ("*", "/"):
        factor = float(nb)
        return a * factor if op == "*" else (None if factor == 0 else a / factor)
    if isinstance(b, timedelta) and na is not None and op == "*":
        return b * float(na)
    return None


def _text(test: Callable[[str, str], bool]) -> Callable[[object, object], object]:
    return lambda a, b: isinstance(a, str) and isinstance(b, str) and test(a, b)


_OPERATORS: Mapping[str, Callable[[object, object], object]] = MappingProxyType(
    {
        "==": _eq,
        "!=": lambda a, b: not _eq(a, b),
        "<": lambda a, b: _order(a, b, lambda s: s < 0),
        "<=": lambda a, b: _order(a, b, lambda s: s <= 0),
        ">": lambda a, b: _order(a, b, lambda s: s > 0),
        ">=": lambda a, b: _order(a, b, lambda s: s >= 0),
        "in": _contains,
        "not in": lambda a, b: not _contains(a, b),
        "starts_with": _text(str.startswith),
        "ends_with": _text(str.endswith),
        "+": _arith("+"),
        "-": _arith("-"),
        "*": _arith("*"),
        "/": _arith("/"),
        "%": _arith("%"),
    }
)
