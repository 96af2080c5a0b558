"""The formatter: one canonical layout for rule files.

Two-space indentation, one statement a line, `=` and field types aligned in
runs of consecutive one-line statements (like `terraform fmt`), one blank line
kept where the source had any, literals spelt as written. Lists, maps and
argument lists that span lines in the source stay one item a line with a
trailing comma. Comments are kept: a comment inside an expression that is
joined onto one line moves to its own line before the statement.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from dsl import ast
from dsl.parser import parse
from dsl.printer import source

__all__ = ["format_source"]

_INDENT = "  "
# Statements of blocks whose runs of one-line statements are aligned.
_Aligned = (
    ast.FieldDef
    | ast.Attribute
    | ast.WhenClause
    | ast.RetryClause
    | ast.TimeoutClause
    | ast.RateLimitClause
)
_ALIGNED = (ast.WebhookDef, ast.TemplateDef, ast.HookDef)


def format_source(text: str, file: str = "<input>") -> str:
    """Return `text` in canonical layout.

    Raises:
        RuleSyntaxError: the text does not parse (nothing is formatted).
    """
    module = parse(text, file)
    return _Formatter(module, text).run()


def _multiline(node: ast.Expr | ast.Block | None) -> bool:
    return node is not None and node.span.end_line > node.span.line


class _Formatter:
    def __init__(self, module: ast.Module, text: str) -> None:
        self.module = module
        self.out: list[str] = []
        lines = text.splitlines()
        self.blank = {i + 1 for i, line in enumerate(lines) if not line.strip()}
        self.own_line = {
            c.line for c in module.comments if not lines[c.line - 1][: c.column - 1].strip()
        }
        self.comments = list(module.comments)
        self.next = 0
        self.last = 0

    def run(self) -> str:
        previous: ast.Definition | None = None
        for definition in self.module.definitions:
            both_const = isinstance(previous, ast.ConstDef) and isinstance(definition, ast.ConstDef)
            if previous is not None and not both_const and self.out and self.out[-1] != "":
                self.out.append("")
            self.definition(definition)
            previous = definition
        self.leading(10**9, "")
        return "\n".join(self.out).rstrip("\n") + "\n" if self.out else ""

    # ---- comments and blank lines

    def gap(self, line: int) -> None:
        opened = not self.out or self.out[-1].endswith("{") or self.out[-1] == ""
        if not opened and any(self.last < b < line for b in self.blank):
            self.out.append("")

    def leading(self, line: int, indent: str) -> None:
        """Emit the comments before source line `line` on lines of their own."""
        while self.next < len(self.comments) and self.comments[self.next].line < line:
            comment = self.comments[self.next]
            self.gap(comment.line)
            self.out.append(indent + comment.text)
            self.last = max(self.last, comment.line)
            self.next += 1

    def trailing(self, line: int) -> str:
        """The comment at the end of source line `line`, if any, as a suffix."""
        parts = []
        while self.next < len(self.comments) and self.comments[self.next].line == line:
            parts.append(self.comments[self.next].text)
            self.next += 1
        return "".join("  " + p for p in parts)

    def line(self, text: str, span: ast.Span, indent: str, end: int | None = None) -> None:
        """Emit one output line for source lines span.line .. end (default span.end_line)."""
        last = span.end_line if end is None else end
        self.leading(span.line, indent)
        self.gap(span.line)
        # Comments inside a construct joined onto one line go before it.
        self.leading(last, indent)
        self.out.append(indent + text + self.trailing(last))
        self.last = max(self.last, last)

    def close(self, closing: str, span: ast.Span, indent: str) -> None:
        self.leading(span.end_line, indent + _INDENT)
        self.out.append(indent + closing + self.trailing(span.end_line))
        self.last = max(self.last, span.end_line)

    # ---- definitions

    def definition(self, node: ast.Definition) -> None:
        if isinstance(node, ast.ConstDef):
            self.assignment(f"const {node.name} = ", node.value, node.span, "")
            return
        keyword = {
            ast.EventDef: "event",
            ast.WebhookDef: "webhook",
            ast.TemplateDef: "template",
            ast.HookDef: "hook",
            ast.WorkflowDef: "workflow",
        }[type(node)]
        self.line(f"{keyword} {node.name} {{", node.span, "", node.span.line)
        if isinstance(node, ast.EventDef):
            self.aligned(node.body, _INDENT, fields=True)
        elif isinstance(node, _ALIGNED):
            self.aligned(node.body, _INDENT, fields=False)
        else:
            for stmt in node.body:
                self.statement(stmt, _INDENT)
        self.close("}", node.span, "")

    def aligned(self, body: Sequence[_Aligned], indent: str, *, fields: bool) -> None:
        runs: list[list[_Aligned]] = []
        previous: _Aligned | None = None
        for stmt in body:
            if previous is not None and not self._breaks(previous, stmt, fields):
                runs[-1].append(stmt)
            else:
                runs.append([stmt])
            previous = stmt
        for run in runs:
            width = max(len(self._head(s)) for s in run)
            for stmt in run:
                self.aligned_statement(stmt, indent, width)

    def _breaks(self, previous: _Aligned, stmt: _Aligned, fields: bool) -> bool:
        prev_span, span = previous.span, stmt.span
        if fields and isinstance(previous, ast.FieldDef) != isinstance(stmt, ast.FieldDef):
            return True
        blank = any(prev_span.end_line < b < span.line for b in self.blank)
        return blank or self._is_multiline(previous) or self._is_multiline(stmt)

    def _is_multiline(self, stmt: _Aligned) -> bool:
        if isinstance(stmt, ast.Attribute):
            value = stmt.value
            return isinstance(value, ast.ListExpr | ast.MapExpr) and _multiline(value)
        return False

    def _head(self, stmt: _Aligned) -> str:
        if isinstance(stmt, ast.Attribute):
            return stmt.name
        if isinstance(stmt, ast.FieldDef):
            return stmt.name + ("?" if stmt.optional else "") + ":"
        return _CLAUSE_HEADS[type(stmt)]

    def aligned_statement(self, stmt: _Aligned, indent: str, width: int) -> None:
        head = self._head(stmt).ljust(width)
        if isinstance(stmt, ast.Attribute):
            self.assignment(f"{head} = ", stmt.value, stmt.span, indent)
        elif isinstance(stmt, ast.FieldDef):
            self.field(stmt, head, indent)
        else:
            assert isinstance(
                stmt, ast.WhenClause | ast.RetryClause | ast.TimeoutClause | ast.RateLimitClause
            )
            self.line(f"{head}   {_clause_body(stmt)}", stmt.span, indent)

    def field(self, stmt: ast.FieldDef, head: str, indent: str) -> None:
        default = f" = {source(stmt.default)}" if stmt.default is not None else ""
        self.line(f"{head} {_type(stmt.type)}{default}", stmt.span, indent)

    def assignment(self, prefix: str, value: ast.Expr, span: ast.Span, indent: str) -> None:
        if isinstance(value, ast.ListExpr | ast.MapExpr) and _multiline(value) and _items(value):
            self.container(prefix, value, span, indent, "")
        else:
            self.line(prefix + source(value), span, indent)

    def container(
        self,
        prefix: str,
        value: ast.ListExpr | ast.MapExpr,
        span: ast.Span,
        indent: str,
        suffix: str,
    ) -> None:
        opener, closer = ("[", "]") if isinstance(value, ast.ListExpr) else ("{", "}")
        self.line(prefix + opener, span, indent, span.line)
        for text, item_span in _items(value):
            self.line(text + ",", item_span, indent + _INDENT)
        self.close(closer + suffix, value.span, indent)

    # ---- workflow statements

    def statement(self, stmt: ast.WorkflowStmt, indent: str) -> None:
        if isinstance(stmt, ast.IfStep):
            self.if_step(stmt, indent)
        elif isinstance(stmt, ast.Parallel):
            self.line("parallel {", stmt.span, indent, stmt.body.span.line)
            self.block(stmt.body, indent)
        elif isinstance(stmt, ast.NamedStep):
            self.action(stmt.action, f"{stmt.name} = ", stmt.span, indent)
        elif isinstance(
            stmt, ast.SendEmail | ast.SendWebhook | ast.Emit | ast.CallStep | ast.WaitFor
        ):
            self.action(stmt, "", stmt.span, indent)
        else:
            self.line(_simple(stmt), stmt.span, indent)

    def block(self, block: ast.Block, indent: str, closing: str = "}") -> None:
        for step in block.steps:
            self.statement(step, indent + _INDENT)
        self.close(closing, block.span, indent)

    def if_step(self, stmt: ast.IfStep, indent: str) -> None:
        self.line(f"if {source(stmt.condition)} {{", stmt.span, indent, stmt.body.span.line)
        blocks = [stmt.body, *(e.body for e in stmt.elifs), *([stmt.orelse] if stmt.orelse else [])]
        headers = [f"}} else if {source(e.condition)} {{" for e in stmt.elifs]
        if stmt.orelse is not None:
            headers.append("} else {")
        for body, header in zip(blocks, [*headers, "}"], strict=True):
            for step in body.steps:
                self.statement(step, indent + _INDENT)
            self.close(header, body.span, indent)

    def action(self, stmt: ast.Action, prefix: str, span: ast.Span, indent: str) -> None:
        if isinstance(stmt, ast.WaitFor):
            text = f"{prefix}wait for {source(stmt.event)}"
            if stmt.where is not None:
                text += f" where {source(stmt.where)}"
            text += f" timeout {source(stmt.timeout)}"
            if stmt.on_timeout is None:
                self.line(text, span, indent)
                return
            self.line(text + " else {", span, indent, stmt.on_timeout.span.line)
            self.block(stmt.on_timeout, indent)
            return
        options = "".join(" " + _clause_text(o) for o in stmt.options)
        if isinstance(stmt, ast.CallStep):
            head = f"{prefix}{stmt.action}("
            args = [(_arg(a), a.span) for a in stmt.args]
            call_span = ast.Span(span.file, span.line, span.column, _args_end(stmt, span), 0)
            if args and call_span.end_line > span.line:
                self.line(head, span, indent, span.line)
                for text, arg_span in args:
                    self.line(text + ",", arg_span, indent + _INDENT)
                self.close(")" + options, call_span, indent)
            else:
                self.line(head + ", ".join(t for t, _ in args) + ")" + options, span, indent)
            return
        if isinstance(stmt, ast.SendEmail):
            head, data = f"{prefix}send_email {stmt.template} to {source(stmt.to)}", stmt.variables
        elif isinstance(stmt, ast.SendWebhook):
            head, data = f"{prefix}send_webhook {stmt.webhook}", stmt.payload
        else:
            head, data = f"{prefix}emit {source(stmt.event)}", stmt.data
        if data is not None and _multiline(data) and data.entries:
            self.container(head + " ", data, span, indent, options)
        else:
            text = head + (" " + source(data) if data is not None else "") + options
            self.line(text, span, indent)


_CLAUSE_HEADS: Mapping[type, str] = MappingProxyType(
    {
        ast.WhenClause: "when",
        ast.RetryClause: "retry",
        ast.TimeoutClause: "timeout",
        ast.RateLimitClause: "rate_limit",
    }
)


def _clause_body(
    stmt: ast.WhenClause | ast.RetryClause | ast.TimeoutClause | ast.RateLimitClause,
) -> str:
    if isinstance(stmt, ast.WhenClause):
        return source(stmt.expr)
    if isinstance(stmt, ast.TimeoutClause):
        return source(stmt.duration)
    if isinstance(stmt, ast.RateLimitClause):
        return f"{source(stmt.count)} per {source(stmt.window)}"
    text = f"{source(stmt.attempts)} times"
    if stmt.backoff == "exponential":
        text += f", exponential {source(stmt.delays[0])} .. {source(stmt.delays[1])}"
    elif stmt.backoff is not None:
        text += f", {stmt.backoff} {source(stmt.delays[0])}"
    return text


def _clause_text(stmt: ast.RetryClause | ast.TimeoutClause) -> str:
    return f"{_CLAUSE_HEADS[type(stmt)]} {_clause_body(stmt)}"


def _simple(stmt: ast.WorkflowStmt) -> str:
    def when(expr: ast.Expr | None) -> str:
        return f" when {source(expr)}" if expr is not None else ""

    if isinstance(stmt, ast.OnEvent):
        return f"on {source(stmt.patterns)}{when(stmt.when)}"
    if isinstance(stmt, ast.OnSchedule):
        zone = f" timezone {source(stmt.timezone)}" if stmt.timezone is not None else ""
        return f"on schedule {source(stmt.cron)}{zone}"
    if isinstance(stmt, ast.OnManual):
        return "on manual"
    if isinstance(stmt, ast.OnHook):
        return f"on hook {stmt.hook}{when(stmt.when)}"
    if isinstance(stmt, ast.CancelOn):
        return f"cancel on {source(stmt.patterns)}{when(stmt.when)}"
    if isinstance(stmt, ast.TimeoutClause):
        return _clause_text(stmt)
    if isinstance(stmt, ast.Concurrency | ast.Debounce):
        word = "concurrency" if isinstance(stmt, ast.Concurrency) else "debounce"
        first = stmt.limit if isinstance(stmt, ast.Concurrency) else stmt.window
        key = f" per {source(stmt.key)}" if stmt.key is not None else ""
        return f"{word} {source(first)}{key}"
    if isinstance(stmt, ast.Dedup):
        window = f" for {source(stmt.window)}" if stmt.window is not None else ""
        return f"dedup {source(stmt.key)}{window}"
    if isinstance(stmt, ast.Description):
        return f"description = {source(stmt.value)}"
    if isinstance(stmt, ast.WaitDuration):
        return f"wait {source(stmt.duration)}"
    if isinstance(stmt, ast.WaitUntil):
        return f"wait until {source(stmt.time)}"
    if isinstance(stmt, ast.SetStep):
        return f"set {stmt.name} = {source(stmt.value)}"
    if isinstance(stmt, ast.FailStep):
        return "fail" + (f" {source(stmt.message)}" if stmt.message is not None else "")
    assert isinstance(stmt, ast.RetryFrom)
    return f"retry_from {stmt.step}"


def _arg(arg: ast.Arg) -> str:
    return source(arg.value) if arg.name is None else f"{arg.name}: {source(arg.value)}"


def _args_end(stmt: ast.CallStep, span: ast.Span) -> int:
    """The source line of the call's closing parenthesis (before any step options)."""
    if stmt.options:
        return stmt.options[0].span.line
    return span.end_line


def _items(value: ast.ListExpr | ast.MapExpr) -> list[tuple[str, ast.Span]]:
    if isinstance(value, ast.ListExpr):
        return [(source(i), i.span) for i in value.items]
    return [(f"{_key(e)}: {source(e.value)}", e.span) for e in value.entries]


def _key(entry: ast.MapEntry) -> str:
    return json.dumps(entry.key, ensure_ascii=False) if entry.quoted else entry.key


def _type(node: ast.TypeExpr) -> str:
    if isinstance(node, ast.NamedType):
        return node.name
    if isinstance(node, ast.ListType):
        return f"list[{_type(node.item)}]"
    if isinstance(node, ast.EnumType):
        return " | ".join(json.dumps(v, ensure_ascii=False) for v in node.values)
    inner = ", ".join(
        f"{f.name}{'?' if f.optional else ''}: {_type(f.type)}"
        + (f" = {source(f.default)}" if f.default is not None else "")
        for f in node.fields
    )
    return "{ " + inner + " }" if inner else "{}"
