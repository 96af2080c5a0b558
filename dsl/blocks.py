"""Checking and lowering of `webhook`, `template` and `hook` blocks."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, TypeVar, cast

from dsl import ast, ir
from dsl.diagnostics import did_you_mean
from dsl.expr import Scope
from dsl.lowering import Lowering
from dsl.templates import (
    LAYOUT_VARIABLES,
    TemplateFileProblem,
    TemplateSource,
    load_sample,
    load_template_file,
    referenced_files,
    string_variables,
)
from dsl.types import BOOL

__all__ = ["attributes", "lower_hook", "lower_template", "lower_webhook", "retry_policy"]

_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_ENGINE_HEADERS = frozenset(
    {"content-type", "content-length", "host", "webhook-id", "webhook-timestamp"}
    | {"webhook-signature", "user-agent"}
)
_CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "proxy-authorization"})
_DEFAULT_RETRY = ir.RetryPolicy(
    attempts=8, backoff="schedule", delays=(5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
)
_WEBHOOK_ATTRS = ("url", "secret", "events", "headers", "ordered", "description")
_TEMPLATE_ATTRS = (
    "subject",
    "html",
    "text",
    "layout",
    "from",
    "reply_to",
    "variables",
    "sample",
    "category",
    "description",
    "preview",
    "tracking",
)
_HOOK_ATTRS = ("secret", "header", "algorithm", "path", "description")


def attributes(
    low: Lowering,
    body: Sequence[object],
    allowed: Sequence[str],
    block: str,
    required: Sequence[str],
    name_span: ast.Span,
) -> dict[str, ast.Attribute]:
    """The block's attributes by name; reports unknown, repeated and missing ones."""
    found: dict[str, ast.Attribute] = {}
    for stmt in body:
        if not isinstance(stmt, ast.Attribute):
            continue
        if stmt.name not in allowed:
            hint = did_you_mean(stmt.name, allowed) or "attributes: " + ", ".join(allowed)
            low.report("E018", f"unknown attribute '{stmt.name}' in {block}", stmt.span, hint)
        elif stmt.name in found:
            first = found[stmt.name].span.line
            message = f"attribute '{stmt.name}' is set twice in {block} (first on line {first})"
            low.report("E010", message, stmt.span)
        else:
            found[stmt.name] = stmt
    for name in required:
        if name not in found:
            low.report("E019", f"{block} has no '{name}'", name_span, f"add `{name} = ...`")
    return found


def retry_policy(low: Lowering, clause: ast.RetryClause) -> ir.RetryPolicy | None:
    """`retry N times[, exponential A .. B | every D | schedule [D, ...]]`."""
    attempts = low.integer(clause.attempts, "retry attempts", 1, 50)
    if clause.backoff is None:
        if attempts is None:
            return None
        return _DEFAULT_RETRY.model_copy(update={"attempts": attempts})
    if clause.backoff == "schedule":
        items = low.literal(clause.delays[0])
        if not isinstance(items, ast.ListExpr) or not items.items:
            low.report(
                "E022", "a retry schedule is a list of durations, e.g. [1m, 5m, 1h]", items.span
            )
            return None
        exprs: tuple[ast.Expr, ...] = items.items
    else:
        exprs = clause.delays
    delays = [low.duration(e, "retry delay", "1s", "7d") for e in exprs]
    if attempts is None or any(d is None for d in delays):
        return None
    values = tuple(d for d in delays if d is not None)
    if clause.backoff == "exponential" and values[0] > values[1]:
        low.report("E043", "the first retry delay is longer than the cap", clause.span)
        return None
    backoff = "every" if clause.backoff == "every" else clause.backoff
    assert backoff in ("exponential", "every", "schedule")
    return _retry(attempts, backoff, values)


# IR models are frozen: rules that say the same share one instance.
@functools.lru_cache(maxsize=1024)
def _retry(
    attempts: int, backoff: Literal["exponential", "every", "schedule"], delays: tuple[float, ...]
) -> ir.RetryPolicy:
    return ir.RetryPolicy(attempts=attempts, backoff=backoff, delays=delays)


def _secrets(low: Lowering, expr: ast.Expr, what: str) -> tuple[ir.Value, ...]:
    value = low.literal(expr)
    items = value.items if isinstance(value, ast.ListExpr) else (value,)
    if not 1 <= len(items) <= 2:
        low.report("E022", f"{what} is one env() value, or a list of two for rotation", expr.span)
        return ()
    found = [low.value(item, what, secret=True) for item in items]
    return tuple(v for v in found if v is not None)


_Clause = TypeVar(
    "_Clause", ast.WhenClause, ast.RetryClause, ast.TimeoutClause, ast.RateLimitClause
)


def _single(
    low: Lowering, body: dict[type, list[object]], kind: type[_Clause], what: str
) -> list[_Clause]:
    """The first clause of a kind (at most one), reporting any repeat.

    `body` holds a block's statements by type (`_by_type`): one pass over
    them for all the kinds of clause.
    """
    clauses = cast("list[_Clause]", body.get(kind, []))
    for extra in clauses[1:]:
        message = f"{what} is already given on line {clauses[0].span.line}"
        low.report("E010", message, extra.span)
    return clauses[:1]


def _by_type(body: Sequence[object]) -> dict[type, list[object]]:
    kinds: dict[type, list[object]] = {}
    for stmt in body:
        kinds.setdefault(type(stmt), []).append(stmt)
    return kinds


def _description(low: Lowering, attrs: dict[str, ast.Attribute]) -> str | None:
    attr = attrs.get("description")
    return low.string(attr.value, "description") if attr else None


def lower_webhook(low: Lowering, node: ast.WebhookDef) -> ir.Webhook | None:
    """Check a webhook and lower it (None when it has errors)."""
    webhook = _lower_webhook(low, node)
    low.refuse_secrets(node)  # after the checks that refuse a literal secret themselves
    return webhook


def _lower_webhook(low: Lowering, node: ast.WebhookDef) -> ir.Webhook | None:
    block = f"webhook {node.name}"
    attrs = attributes(
        low, node.body, _WEBHOOK_ATTRS, block, ("url", "secret", "events"), node.name_span
    )
    url = low.url(attrs["url"].value, "url") if "url" in attrs else None
    secrets = _secrets(low, attrs["secret"].value, "secret") if "secret" in attrs else ()
    patterns: list[tuple[str, ast.Span]] = []
    if "events" in attrs:
        patterns = low.patterns(attrs["events"].value, "a webhook needs at least one event pattern")
    types = low.event_types(patterns)
    event = low.catalog.envelope(types, low.catalog.data_type(types, _label(patterns)))
    scope = Scope({"event": event})
    clauses = _by_type(node.body)
    when = None
    for condition in _single(low, clauses, ast.WhenClause, "when"):
        when, _ = low.typed(condition.expr, scope, BOOL, "the when condition")
    retry: ir.RetryPolicy | None = _DEFAULT_RETRY
    for policy in _single(low, clauses, ast.RetryClause, "retry"):
        retry = retry_policy(low, policy)
    timeout: float | None = 10.0
    for limit in _single(low, clauses, ast.TimeoutClause, "timeout"):
        timeout = low.duration(limit.duration, "webhook timeout", "1s", "2m")
    rate_limit = None
    for rate in _single(low, clauses, ast.RateLimitClause, "rate_limit"):
        count = low.integer(rate.count, "rate limit", 1, 100_000)
        per = low.duration(rate.window, "rate limit window", "1s", "1d")
        if count is not None and per is not None:
            rate_limit = ir.RateLimit(count=count, per_seconds=per)
    headers = _headers(low, attrs["headers"].value) if "headers" in attrs else ()
    ordered = low.boolean(attrs["ordered"].value, "ordered") if "ordered" in attrs else False
    if url is None or not secrets or not patterns or retry is None or timeout is None:
        return None
    return ir.Webhook(
        name=node.name,
        description=_description(low, attrs),
        url=url,
        secrets=secrets,
        events=tuple(p for p, _ in patterns),
        when=when,
        retry=retry,
        timeout_seconds=timeout,
        headers=headers,
        rate_limit=rate_limit,
        ordered=ordered,
        source=ir.Source(file=node.span.file, line=node.span.line),
    )


def _label(patterns: list[tuple[str, ast.Span]]) -> str:
    names = [p for p, _ in patterns]
    if len(names) == 1 and "*" not in names[0]:
        return f"event {names[0]}"
    return "events " + ", ".join(names)


def _headers(low: Lowering, expr: ast.Expr) -> tuple[ir.Header, ...]:
    value = low.literal(expr)
    if not isinstance(value, ast.MapExpr):
        low.report("E022", 'headers must be a map, e.g. { "X-Source": "ownly" }', expr.span)
        return ()
    headers = []
    for entry in value.entries:
        lower = entry.key.lower()
        if not _HEADER_NAME.fullmatch(entry.key):
            low.report("E022", f"'{entry.key}' is not a valid header name", entry.span)
        elif lower in _ENGINE_HEADERS:
            low.report("E022", f"header '{entry.key}' is set by the engine", entry.span)
        else:
            secret = lower in _CREDENTIAL_HEADERS
            header = low.value(entry.value, f"header '{entry.key}'", secret=secret)
            if header is not None:
                headers.append(ir.Header(name=entry.key, value=header))
    return tuple(headers)


def lower_template(low: Lowering, node: ast.TemplateDef, directory: Path) -> ir.Template | None:
    block = f"template {node.name}"
    attrs = attributes(low, node.body, _TEMPLATE_ATTRS, block, ("subject", "html"), node.name_span)
    text: dict[str, str | None] = {}
    for name in ("subject", "html", "text", "layout", "sample", "category", "preview"):
        text[name] = low.string(attrs[name].value, name) if name in attrs else None
    variables: tuple[str, ...] = ()
    if "variables" in attrs:
        variables = _variables(low, attrs["variables"])
    low.template_variables[node.name] = variables if "variables" in attrs else None
    declared = frozenset(variables)
    tracking = low.boolean(attrs["tracking"].value, "tracking") if "tracking" in attrs else True
    sender = low.address(attrs["from"].value, "from") if "from" in attrs else None
    reply_to = low.address(attrs["reply_to"].value, "reply_to") if "reply_to" in attrs else None
    subject, html = text["subject"], text["html"]
    if subject is not None:
        used = string_variables(subject)
        _check_used(low, attrs["subject"], used, declared, "the subject")
    for key, extra in (("html", ()), ("text", ()), ("layout", LAYOUT_VARIABLES)):
        if text[key] is not None:
            _check_file(low, attrs[key], directory, text[key] or "", declared | set(extra))
    if text["sample"] is not None:
        _check_sample(low, attrs["sample"], directory, text["sample"], variables)
    if subject is None or html is None:
        return None
    return ir.Template(
        name=node.name,
        description=_description(low, attrs),
        subject=subject,
        html=html,
        text=text["text"],
        layout=text["layout"],
        sender=sender,
        reply_to=reply_to,
        variables=variables,
        sample=text["sample"],
        category=text["category"],
        preview=text["preview"],
        tracking=tracking,
        source=ir.Source(file=node.span.file, line=node.span.line),
    )


def _variables(low: Lowering, attr: ast.Attribute) -> tuple[str, ...]:
    value = low.literal(attr.value)
    if not isinstance(value, ast.ListExpr):
        low.report("E022", 'variables must be a list of names, e.g. ["deal", "amount"]', attr.span)
        return ()
    names: list[str] = []
    for item in value.items:
        if isinstance(item, ast.Literal) and isinstance(item.value, str):
            name = item.value
        elif isinstance(item, ast.Path) and len(item.parts) == 1:
            name = item.parts[0]
        else:
            low.report("E022", "a template variable is a plain name", item.span)
            continue
        if name in names:
            low.report("E010", f"variable '{name}' is declared twice", item.span)
        names.append(name)
    return tuple(dict.fromkeys(names))


def _check_used(
    low: Lowering,
    attr: ast.Attribute,
    used: frozenset[str] | TemplateFileProblem,
    declared: frozenset[str],
    where: str,
) -> None:
    if isinstance(used, TemplateFileProblem):
        low.report(used.code, f"{where}: {used.message}", attr.value.span)
        return
    for name in sorted(used - declared):
        hint = did_you_mean(name, declared) or "declare it in `variables = [...]`"
        message = f"{where} uses '{name}', which is not a declared template variable"
        low.report("E030", message, attr.value.span, hint)


def _check_file(
    low: Lowering, attr: ast.Attribute, directory: Path, name: str, declared: frozenset[str]
) -> None:
    loaded = load_template_file(directory, name)
    if isinstance(loaded, TemplateFileProblem):
        _report_file(low, attr, directory, name, loaded, None)
        return
    low.files[name] = loaded.sha256
    _check_used(low, attr, loaded.variables, declared, f"template file '{name}'")
    _check_references(low, attr, directory, loaded, declared)


def _check_references(
    low: Lowering,
    attr: ast.Attribute,
    directory: Path,
    source: TemplateSource,
    declared: frozenset[str],
) -> None:
    """Check the files a template file includes, extends or imports, and version them.

    They are rendered with it, so one missing or broken is the template's
    error; one rendered with its variables may use only the declared ones.
    """
    for ref in referenced_files(directory, source):
        where = f"'{ref.parent}' refers to '{ref.name}'"
        if isinstance(ref.loaded, TemplateFileProblem):
            _report_file(low, attr, directory, ref.name, ref.loaded, where)
            continue
        low.files[ref.name] = ref.loaded.sha256
        if ref.in_context:
            used = ref.loaded.variables - ref.visible
            _check_used(low, attr, used, declared, f"template file '{ref.name}'")


def _report_file(
    low: Lowering,
    attr: ast.Attribute,
    directory: Path,
    name: str,
    problem: TemplateFileProblem,
    referred: str | None,
) -> None:
    """Report a template file that cannot be used (`referred`: which file pulls it in).

    One that does not parse is reported in it, at its line; one that cannot
    be read, at the attribute that names the template's file.
    """
    if problem.code == "E033":
        span = ast.Span(str(directory / name), problem.line, 1, problem.line, 2)
        low.report("E033", f"{referred or name}: {problem.message}", span)
    else:
        message = f"{referred}: {problem.message}" if referred else problem.message
        low.report(problem.code, message, attr.value.span)


def _check_sample(
    low: Lowering, attr: ast.Attribute, directory: Path, name: str, variables: tuple[str, ...]
) -> None:
    loaded = load_sample(directory, name)
    if isinstance(loaded, TemplateFileProblem):
        low.report(loaded.code, loaded.message, attr.value.span)
        return
    data, digest = loaded
    low.files[name] = digest
    for variable in variables:
        if variable not in data:
            message = f"sample data '{name}' has no value for variable '{variable}'"
            low.report("E034", message, attr.value.span)


def lower_hook(low: Lowering, node: ast.HookDef) -> ir.Hook | None:
    block = f"hook {node.name}"
    attrs = attributes(low, node.body, _HOOK_ATTRS, block, ("secret",), node.name_span)
    secrets = _secrets(low, attrs["secret"].value, "secret") if "secret" in attrs else ()
    header = "Webhook-Signature"
    if "header" in attrs:
        header = low.string(attrs["header"].value, "header") or header
    algorithm = "hmac-sha256"
    if "algorithm" in attrs:
        algorithm = low.string(attrs["algorithm"].value, "algorithm") or algorithm
        if algorithm not in ("hmac-sha256", "hmac-sha512"):
            hint = 'one of "hmac-sha256", "hmac-sha512"'
            low.report(
                "E022",
                f"unknown signature algorithm '{algorithm}'",
                attrs["algorithm"].value.span,
                hint,
            )
            return None
    path = f"/hooks/{node.name}"
    if "path" in attrs:
        path = low.string(attrs["path"].value, "path") or path
        if not path.startswith("/hooks/"):
            low.report("E022", "a hook path starts with /hooks/", attrs["path"].value.span)
    if not secrets:
        return None
    assert algorithm in ("hmac-sha256", "hmac-sha512")
    return ir.Hook(
        name=node.name,
        description=_description(low, attrs),
        path=path,
        secrets=secrets,
        header=header,
        algorithm=algorithm,
        source=ir.Source(file=node.span.file, line=node.span.line),
    )
