"""Expressions back to source text: as written (for the formatter) or canonical (for the IR).

Canonical text drops redundant parentheses, `_` in numbers and spelling
differences (`60s` is `1m`, `10.50` is `10.5`), so that the compiled rule set
and its version hash depend on meaning, not layout.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from types import MappingProxyType

from dsl import ast

__all__ = ["canonical", "duration_text", "source"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UNITS = (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
_PREC = MappingProxyType(
    {
        "or": 1,
        "and": 2,
        "??": 5,
        "+": 6,
        "-": 6,
        "*": 7,
        "/": 7,
        "%": 7,
    }
)
_COMPARE_PREC = 4
_NOT_PREC = 3
_NEG_PREC = 8
_POSTFIX_PREC = 9
_ATOM_PREC = 10


def source(expr: ast.Expr) -> str:
    """The expression as written: literal spelling and parentheses kept."""
    return _Printer(canonical=False).show(expr)


def canonical(expr: ast.Expr) -> str:
    """The expression's canonical text: equal meaning gives equal text."""
    return _Printer(canonical=True).show(expr)


def duration_text(seconds: Decimal) -> str:
    """The shortest spelling of a duration: `90s`, `5m`, `1d`, `250ms`."""
    if seconds != seconds.to_integral_value():
        millis = (seconds * 1000).normalize()
        return f"{format(millis, 'f')}ms"
    whole = int(seconds)
    for unit, size in _UNITS:
        if whole and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


# json.dumps(value, ensure_ascii=False), without making an encoder per call.
_json_text = json.JSONEncoder(ensure_ascii=False).encode


def _decimal_text(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text if "." in text else text + ".0"


def _precedence(expr: ast.Expr) -> int:
    if isinstance(expr, ast.Binary):
        return _PREC.get(expr.op, _COMPARE_PREC)
    if isinstance(expr, ast.Unary):
        return _NEG_PREC if expr.op == "-" else _NOT_PREC
    if isinstance(expr, ast.Member | ast.Index):
        return _POSTFIX_PREC
    if isinstance(expr, ast.Literal) and expr.raw.startswith("-"):
        return _NEG_PREC
    return _ATOM_PREC


class _Printer:
    def __init__(self, *, canonical: bool) -> None:
        self.canonical = canonical

    def show(self, expr: ast.Expr) -> str:
        return self._show(expr)

    def _wrap(self, expr: ast.Expr, minimum: int) -> str:
        text = self._show(expr)
        if self.canonical and isinstance(expr, ast.Group):
            return self._wrap(expr.expr, minimum)
        if _precedence(expr) < minimum:
            return f"({text})"
        return text

    def _show(self, expr: ast.Expr) -> str:
        if isinstance(expr, ast.Literal):
            return self._literal(expr)
        if isinstance(expr, ast.DurationLit):
            return duration_text(expr.seconds) if self.canonical else expr.raw
        if isinstance(expr, ast.Path):
            return ".".join(expr.parts)
        if isinstance(expr, ast.Group):
            return self._show(expr.expr) if self.canonical else f"({self._show(expr.expr)})"
        if isinstance(expr, ast.Member):
            return f"{self._wrap(expr.obj, _POSTFIX_PREC)}.{expr.name}"
        if isinstance(expr, ast.Index):
            return f"{self._wrap(expr.obj, _POSTFIX_PREC)}[{self._show(expr.key)}]"
        if isinstance(expr, ast.ListExpr):
            return "[" + ", ".join(self._show(i) for i in expr.items) + "]"
        if isinstance(expr, ast.MapExpr):
            return self.map(expr)
        if isinstance(expr, ast.Call):
            return f"{expr.func}(" + ", ".join(self.arg(a) for a in expr.args) + ")"
        if isinstance(expr, ast.Unary):
            if expr.op == "-":
                return "-" + self._wrap(expr.operand, _NEG_PREC)
            if expr.op == "exists":
                return "exists " + self._wrap(expr.operand, _POSTFIX_PREC)
            return "not " + self._wrap(expr.operand, _NOT_PREC)
        return self._binary(expr)

    def _binary(self, expr: ast.Binary) -> str:
        prec = _precedence(expr)
        if prec == _COMPARE_PREC:
            left = self._wrap(expr.left, prec + 1)
            right = self._wrap(expr.right, prec + 1)
        else:
            left = self._wrap(expr.left, prec)
            right = self._wrap(expr.right, prec + 1)
        return f"{left} {expr.op} {right}"

    def arg(self, arg: ast.Arg) -> str:
        value = self._show(arg.value)
        return value if arg.name is None else f"{arg.name}: {value}"

    def key(self, entry: ast.MapEntry) -> str:
        quote = (entry.quoted and not self.canonical) or not _IDENT.fullmatch(entry.key)
        return _json_text(entry.key) if quote else entry.key

    def map(self, expr: ast.MapExpr) -> str:
        if not expr.entries:
            return "{}"
        body = ", ".join(f"{self.key(e)}: {self._show(e.value)}" for e in expr.entries)
        return "{ " + body + " }"

    def _literal(self, lit: ast.Literal) -> str:
        if not self.canonical:
            return lit.raw
        value = lit.value
        if isinstance(value, bool):
            return "true" if value else "false"
        if value is None:
            return "null"
        if isinstance(value, str):
            return _json_text(value)
        if isinstance(value, Decimal):
            return _decimal_text(value)
        return str(value)
