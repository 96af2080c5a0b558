"""Shared machinery for checking blocks and lowering them to the IR.

`Lowering` holds what every block checker needs: the diagnostics sink, the
catalog, the definitions by name, const inlining, literal helpers with range
checks, the refusal of strings that look like credentials (`dsl.secrets`), and
the table of compiled expressions.
"""

from __future__ import annotations

import functools
import re
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from dsl import ast, ir
from dsl.builder import MAX_NESTING
from dsl.catalog import Catalog
from dsl.diagnostics import Diagnostic, did_you_mean
from dsl.expr import Scope, check_expr, env_ref, walk
from dsl.printer import canonical, source
from dsl.secrets import SECRET_QUERY, secret_kind, strings
from dsl.types import BOOL, ERROR, Type

__all__ = ["MAX_INLINED_NODES", "Definitions", "Lowered", "Lowering", "duration_literal"]

_ADDRESS = re.compile(r"[^<>@\s]+@[^<>@\s]+\.[^<>@\s]+|[^<>]*<[^<>@\s]+@[^<>@\s]+\.[^<>@\s]+>")
# An https URL with a host name and a plain path: no credentials, port,
# query, escapes or blanks (most rules' URLs, checked without urlsplit).
_PLAIN_URL = re.compile(r"https://[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*(?:/[A-Za-z0-9._~/-]*)?")


@dataclass(slots=True)
class Definitions:
    """Top-level definitions by name (first definition wins on duplicates)."""

    consts: dict[str, ast.ConstDef] = field(default_factory=dict)
    webhooks: dict[str, ast.WebhookDef] = field(default_factory=dict)
    templates: dict[str, ast.TemplateDef] = field(default_factory=dict)
    hooks: dict[str, ast.HookDef] = field(default_factory=dict)
    workflows: dict[str, ast.WorkflowDef] = field(default_factory=dict)
    events: dict[str, ast.EventDef] = field(default_factory=dict)


# Consts that use each other twice can double an expression at each step: the
# substituted expression is bounded so that checking (and evaluation) stays small.
MAX_INLINED_NODES = 10_000


# Stands in for a const that could not be substituted (already reported), so
# that the expression around it raises no follow-on errors.
_POISON = "<not substituted>"


def _poisoned(span: ast.Span) -> ast.Literal:
    return ast.Literal(span, None, _POISON)


def _is_poisoned(node: ast.Expr) -> bool:
    return isinstance(node, ast.Literal) and node.raw == _POISON


@dataclass(slots=True)
class Lowered:
    """What lowering some webhooks made, without the definitions (a `ParseCache` keeps it)."""

    webhooks: list[ir.Webhook]
    diagnostics: list[Diagnostic]
    expressions: dict[str, ast.Expr]
    env: dict[str, bool]
    env_spans: dict[str, ast.Span]
    used_consts: set[str]


class _TooDeep(Exception):
    def __init__(self, span: ast.Span) -> None:
        super().__init__()
        self.span = span


class Lowering:
    """The state of one compilation: diagnostics, definitions and compiled expressions."""

    def __init__(self, definitions: Definitions, catalog: Catalog) -> None:
        self.defs = definitions
        self.catalog = catalog
        self.diagnostics: list[Diagnostic] = []
        self.expressions: dict[str, ast.Expr] = {}
        self.env: dict[str, bool] = {}
        self.used_consts: set[str] = set()
        self.template_variables: dict[str, tuple[str, ...] | None] = {}
        self.files: dict[str, str] = {}
        self.env_spans: dict[str, ast.Span] = {}
        self._budget = MAX_INLINED_NODES
        self._envs: dict[tuple[tuple[str | None, str], ...], ir.EnvRef] = {}
        self._secret_spans: set[ast.Span] = set()  # of the strings reported as E044
        self.webhooks: list[ir.Webhook] = []
        self.templates: list[ir.Template] = []
        self.hooks: list[ir.Hook] = []
        self.workflows: list[ir.Workflow] = []
        # Offered for a misspelt name: the consts, substituted before a check sees it.
        self._const_names = tuple(definitions.consts)

    def report(self, code: str, message: str, span: ast.Span, hint: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(code, message, span, hint))

    # ---- webhooks lowered apart (file by file, `dsl.stages`), then joined

    def lowered(self) -> Lowered:
        """The webhooks lowered here and what that added."""
        return Lowered(
            self.webhooks,
            self.diagnostics,
            self.expressions,
            self.env,
            self.env_spans,
            self.used_consts,
        )

    def join(self, part: Lowered) -> None:
        """Add what another Lowering over the same definitions made, as if it had been made here.

        Lowering a webhook only adds to the state (diagnostics, expressions,
        env(), consts used) and reads none of it, so lowering webhooks apart
        and joining them in order gives what lowering them here does.
        """
        self.webhooks += part.webhooks
        self.diagnostics += part.diagnostics
        for text, expr in part.expressions.items():
            self.expressions.setdefault(text, expr)
        for name, has_default in part.env.items():
            self.note_env(name, has_default, part.env_spans[name])
        self.used_consts |= part.used_consts
        self._secret_spans.update(d.span for d in part.diagnostics if d.code == "E044")

    # ---- expressions

    def literal(self, expr: ast.Expr, local: frozenset[str] = frozenset()) -> ast.Expr:
        """The expression with consts replaced (consts are macros, checked where used)."""
        if not self.defs.consts:
            return expr
        self._budget = MAX_INLINED_NODES
        try:
            return self._inline(expr, local, (), 0)
        except _TooDeep:
            message = (
                f"nested more than {MAX_NESTING} levels deep, or larger than "
                f"{MAX_INLINED_NODES:,} nodes, once consts are substituted"
            )
            self.report("E057", message, expr.span, "flatten the consts that use each other")
            return _poisoned(expr.span)

    def _inline(
        self, expr: ast.Expr, local: frozenset[str], stack: tuple[str, ...], depth: int
    ) -> ast.Expr:
        self._budget -= 1
        if depth > MAX_NESTING or self._budget < 0:
            raise _TooDeep(expr.span)
        if isinstance(expr, ast.Path):
            root = expr.parts[0]
            const = self.defs.consts.get(root)
            if const is None or root in local:
                return expr
            self.used_consts.add(root)
            if root in stack:
                chain = " -> ".join([*stack, root])
                self.report("E052", f"const '{root}' refers to itself ({chain})", expr.span)
                return _poisoned(expr.span)
            rest = expr.parts[1:]
            value = self._inline(const.value, frozenset(), (*stack, root), depth + len(rest))
            for part in rest:
                value = ast.Member(expr.span, value, part)
            return value
        return _map_children(expr, lambda e: self._inline(e, local, stack, depth + 1))

    def typed(
        self, expr: ast.Expr, scope: Scope, want: Type | None = None, what: str = "value"
    ) -> tuple[str, Type]:
        """Inline, type-check and register an expression; returns its canonical text."""
        inlined = self.literal(expr, frozenset(scope.names))
        refs, poisoned = _references(inlined)
        if poisoned:
            return canonical(inlined), ERROR  # already reported, nothing more to say
        if self._const_names:
            scope = Scope(scope.names, self._const_names)
        t = check_expr(inlined, scope, self.report)
        if want is BOOL and t.kind not in ("bool", "any", "error"):
            hint = "there is no truthiness: compare explicitly, e.g. x != null"
            message = f"{what} must be true or false, got {t.describe()}"
            self.report("E020", message, expr.span, hint)
            t = ERROR
        text = canonical(inlined)
        self.expressions.setdefault(text, inlined)
        for name, default in refs:
            self.note_env(name, default is not None, expr.span)
        return text, t

    def note_env(self, name: str, has_default: bool, span: ast.Span) -> None:
        """Record a use of env(`name`).

        A variable has a default only if every use gives one: a single use
        without a default needs it set. Its span is the first use that needs
        it, so that a report of it missing points at a use without a default.
        """
        had_default = self.env.get(name)
        if had_default is None or (had_default and not has_default):
            self.env_spans[name] = span
        self.env[name] = has_default if had_default is None else had_default and has_default

    # ---- literal values

    def string(self, expr: ast.Expr, what: str) -> str | None:
        value = self.literal(expr)
        if isinstance(value, ast.Literal) and isinstance(value.value, str):
            return value.value
        self.report("E022", f"{what} must be a string literal", expr.span)
        return None

    def boolean(self, expr: ast.Expr, what: str) -> bool:
        value = self.literal(expr)
        if isinstance(value, ast.Literal) and isinstance(value.value, bool):
            return value.value
        self.report("E022", f"{what} must be true or false", expr.span)
        return False

    def integer(self, expr: ast.Expr, what: str, low: int, high: int) -> int | None:
        value = self.literal(expr)
        if not (isinstance(value, ast.Literal) and type(value.value) is int):
            self.report("E022", f"{what} must be a whole number", expr.span)
            return None
        number = value.value
        if not low <= number <= high:
            self.report("E043", f"{what} {number} is out of range ({low} to {high})", expr.span)
            return None
        return number

    def duration(self, expr: ast.Expr, what: str, low: str, high: str) -> float | None:
        """A duration literal (or one negated, or in parentheses) from `low` to `high`."""
        value = self.literal(expr)
        seconds = duration_literal(value)
        if seconds is None:
            self.report("E022", f"{what} must be a duration such as 30s, 5m, 2h or 7d", expr.span)
            return None
        if not _seconds(low) <= seconds <= _seconds(high):
            message = f"{what} {source(value)} is out of range ({low} to {high})"
            self.report("E043", message, expr.span, None)
            return None
        return float(seconds)

    def value(self, expr: ast.Expr, what: str, *, secret: bool = False) -> ir.Value | None:
        """A string literal or `env("NAME"[, "default"])`; secrets must use env()."""
        return self._value(expr, what, secret)[0]

    def _value(
        self, expr: ast.Expr, what: str, secret: bool
    ) -> tuple[ir.Value | None, ast.Literal | None]:
        """`value`, and the literal it was written as (None for env())."""
        value = self.literal(expr)
        if isinstance(value, ast.Call) and value.func == "env":
            return self._env(value), None
        if isinstance(value, ast.Literal) and isinstance(value.value, str):
            if secret:
                hint = 'secrets come from the environment: env("NAME")'
                self._refuse(f"{what} must not be written in the rule file", value.span, hint)
                return None, None
            return value.value, value
        self.report("E022", f'{what} must be a string or env("NAME")', expr.span)
        return None, None

    def _env(self, call: ast.Call) -> ir.EnvRef | None:
        """An `env()` value, checked once for each text of its literal arguments.

        Rules repeat the same env() (a secret shared by many webhooks). Checking
        it again would add nothing: its expression, variable and first span are
        registered by the first one, and a repeat is only skipped when that
        first one reported nothing.
        """
        key = _literal_arguments(call)
        known = self._envs.get(key) if key is not None else None
        if known is not None:
            return known
        reported = len(self.diagnostics)
        _, t = self.typed(call, Scope({}))
        if t.kind == "error":
            return None
        args = [a.value for a in call.args]
        name = args[0]
        default = args[1] if len(args) > 1 else None
        assert isinstance(name, ast.Literal) and isinstance(name.value, str)
        text = default.value if isinstance(default, ast.Literal) else None
        ref = _env_ref(name.value, text if isinstance(text, str) else None)
        if key is not None and len(self.diagnostics) == reported:
            self._envs[key] = ref
        return ref

    def url(self, expr: ast.Expr, what: str) -> ir.Value | None:
        """An absolute http(s) URL literal without credentials, or env().

        A URL with a user name, a password or a token parameter is reported
        as a URL that carries a credential, once: not again by the scan for
        strings that look like one (`refuse_secrets`).
        """
        value, literal = self._value(expr, what, False)
        if not isinstance(value, str) or literal is None:
            return value
        if _PLAIN_URL.fullmatch(value):
            return value  # what the checks below accept, without taking it apart
        parts, hint = _split_url(value)
        if parts is None:
            self.report("E054", f"{what} is not a valid URL: {value!r}", expr.span, hint)
            return None
        credential = parts.username or parts.password or SECRET_QUERY.search(parts.query)
        if credential:
            hint = 'put the whole URL in the environment: env("NAME")'
            self._refuse(f"{what} carries a credential", literal.span, hint)
            return None
        if parts.scheme == "http":
            hint = "deliveries carry signed payloads; use https"
            self.report("W103", f"{what} is not https: {value!r}", expr.span, hint)
        return value

    def url_literal(self, expr: ast.Expr, what: str) -> None:
        """Report a string literal that is not an absolute http(s) URL (E054); other values pass."""
        value = self.literal(expr)
        if not isinstance(value, ast.Literal) or not isinstance(value.value, str):
            return
        if not _PLAIN_URL.fullmatch(value.value):
            parts, hint = _split_url(value.value)
            if parts is None:
                message = f"{what} is not a valid URL: {value.value!r}"
                self.report("E054", message, expr.span, hint)

    def address(self, expr: ast.Expr, what: str) -> ir.Value | None:
        """An email address (`a@b.c` or `Name <a@b.c>`) or env()."""
        value = self.value(expr, what)
        if isinstance(value, str) and not _ADDRESS.fullmatch(value):
            hint = 'e.g. "hello@ownly.com" or "OWNLY <hello@ownly.com>"'
            self.report("E022", f"{what} is not an email address: {value!r}", expr.span, hint)
            return None
        return value

    def refuse_secrets(self, node: object) -> None:
        """Report every string written in `node` (a definition) that looks like a credential.

        Each string once, where it is written: one already refused (a
        webhook's literal `secret`, a `url` with a password) is not reported
        again, nor is a const's string where the const is used.
        """
        hint = 'secrets come from the environment: env("NAME")'
        for text, span in strings(node):
            kind = secret_kind(text)
            if kind is not None and span not in self._secret_spans:
                self._refuse(f"this string looks like {kind}", span, hint)

    def _refuse(self, message: str, span: ast.Span, hint: str) -> None:
        self._secret_spans.add(span)
        self.report("E044", message, span, hint)

    # ---- event patterns

    def patterns(self, expr: ast.Expr, empty: str) -> list[tuple[str, ast.Span]]:
        """The event patterns in `expr` (a pattern, a list, or a const of those).

        An empty list is reported with the message `empty`: what it leaves
        without events (a webhook, a trigger, a step) would otherwise be
        dropped without a word.
        """
        found: list[tuple[str, ast.Span]] = []
        nodes = list(_flatten(self.literal(expr)))
        if not nodes:
            self.report("E045", empty, expr.span, _PATTERN_HINT)
        for node in nodes:
            if not isinstance(node, ast.Path):
                self.report("E045", "expected an event pattern", node.span, _PATTERN_HINT)
                continue
            pattern = ".".join(node.parts)
            if "*" not in pattern and pattern not in self.catalog.events:
                hint = did_you_mean(pattern, self.catalog.names())
                self.report("E011", f"unknown event type '{pattern}'", node.span, hint)
                continue
            if "*" in pattern and not self.catalog.matching(pattern):
                message = f"pattern '{pattern}' matches no event in the catalog"
                self.report("W101", message, node.span, None)
            found.append((pattern, node.span))
        return found

    def event_types(self, patterns: list[tuple[str, ast.Span]]) -> list[str]:
        names: dict[str, None] = {}
        for pattern, _ in patterns:
            names.update(dict.fromkeys(self.catalog.matching(pattern)))
        return list(names)


_PATTERN_HINT = "a pattern is an event type such as deal.funded, or investment.*"


_URL_HINT = 'an absolute http(s) URL, or env("NAME") for one that differs per deployment'


def _split_url(value: str) -> tuple[urllib.parse.SplitResult, None] | tuple[None, str]:
    """The URL taken apart, or None and a hint when it is no absolute http(s) URL.

    A port must be a number from 1 to 65535: `urlsplit` takes any text
    there, and 0 for a number, until the port is asked for.
    """
    try:
        parts = urllib.parse.urlsplit(value)
    except ValueError:  # a stray bracket of an IPv6 address
        return None, _URL_HINT
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None, _URL_HINT
    try:
        port = parts.port
    except ValueError:  # not a number, or above 65535
        port = 0
    if port == 0:
        return None, "a port is a number from 1 to 65535"
    return parts, None


def duration_literal(expr: ast.Expr) -> Decimal | None:
    """The seconds of a duration written as a literal: `1d`, `-1d`, `(5m)`; else None."""
    if isinstance(expr, ast.Group):
        return duration_literal(expr.expr)
    if isinstance(expr, ast.Unary) and expr.op == "-":
        seconds = duration_literal(expr.operand)
        return None if seconds is None else -seconds
    return expr.seconds if isinstance(expr, ast.DurationLit) else None


def _references(expr: ast.Expr) -> tuple[list[tuple[str, str | None]], bool]:
    """The env() references in `expr`, and whether a const already reported as broken
    was substituted into it."""
    refs = []
    poisoned = False
    for node in walk(expr):
        if isinstance(node, ast.Literal):
            poisoned = poisoned or _is_poisoned(node)
        else:
            ref = env_ref(node)
            if ref is not None:
                refs.append(ref)
    return refs, poisoned


def _literal_arguments(call: ast.Call) -> tuple[tuple[str | None, str], ...] | None:
    """A call's arguments as written, where all are literals (None otherwise)."""
    key = []
    for arg in call.args:
        if not isinstance(arg.value, ast.Literal):
            return None
        key.append((arg.name, arg.value.raw))
    return tuple(key)


# IR models are frozen: rules that say the same share one instance.
@functools.lru_cache(maxsize=1024)
def _env_ref(name: str, default: str | None) -> ir.EnvRef:
    return ir.EnvRef(env=name, default=default)


@functools.cache
def _seconds(text: str) -> Decimal:
    """A bound such as "1s" or "7d" (written in this package) in seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return Decimal(text[:-1]) * units[text[-1]]


def _flatten(expr: ast.Expr) -> Iterator[ast.Expr]:
    while isinstance(expr, ast.Group):
        expr = expr.expr
    if isinstance(expr, ast.ListExpr):
        for item in expr.items:
            yield from _flatten(item)
    else:
        yield expr


def _map_children(expr: ast.Expr, f: Callable[[ast.Expr], ast.Expr]) -> ast.Expr:
    if isinstance(expr, ast.Binary):
        return ast.Binary(expr.span, expr.op, f(expr.left), f(expr.right))
    if isinstance(expr, ast.Unary):
        return ast.Unary(expr.span, expr.op, f(expr.operand))
    if isinstance(expr, ast.Group):
        return ast.Group(expr.span, f(expr.expr))
    if isinstance(expr, ast.Member):
        return ast.Member(expr.span, f(expr.obj), expr.name)
    if isinstance(expr, ast.Index):
        return ast.Index(expr.span, f(expr.obj), f(expr.key))
    if isinstance(expr, ast.ListExpr):
        return ast.ListExpr(expr.span, tuple(f(i) for i in expr.items))
    if isinstance(expr, ast.MapExpr):
        entries = tuple(ast.MapEntry(e.span, e.key, e.quoted, f(e.value)) for e in expr.entries)
        return ast.MapExpr(expr.span, entries)
    if isinstance(expr, ast.Call):
        args = tuple(ast.Arg(a.span, a.name, f(a.value)) for a in expr.args)
        return ast.Call(expr.span, expr.func, args)
    return expr
