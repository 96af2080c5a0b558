"""Diagnostics: what the checker says about rule files, rendered like a compiler.

Every problem has a stable code. The table below is the reference; tests and
`docs/language.md` refer to the same codes.

====  ========  ==============================================================
code  severity  meaning
====  ========  ==============================================================
E001  error     syntax error: unexpected token (says what was expected)
E002  error     syntax error: unexpected character
E003  error     syntax error: unexpected end of file
E004  error     file cannot be read or is not UTF-8
E010  error     duplicate definition (event, webhook, template, hook, workflow,
                const, field, attribute, step name)
E011  error     unknown event type
E012  error     unknown field
E013  error     unknown template
E014  error     unknown webhook
E015  error     unknown hook
E016  error     unknown name in an expression
E017  error     unknown function
E018  error     unknown attribute or statement not allowed in this block
E019  error     missing required attribute, argument or field
E020  error     type error in an expression
E021  error     wrong arguments to a function or action
E022  error     wrong kind of value for an attribute
E023  error     value not in the enum
E024  error     unknown type in the event catalog
E026  error     default value does not match the field type
E030  error     unknown template variable
E031  error     template variable not provided
E032  error     template file not found
E033  error     template file is not valid Jinja2
E034  error     sample data missing or not a JSON object
E040  error     unreachable statement after `fail`
E041  error     invalid cron expression
E042  error     unknown time zone
E043  error     duration or number out of range
E044  error     literal secret where `env()` is required
E045  error     not an event pattern / no pattern in a list of them / pattern used
                as a value
E046  error     `wait for ... where` needs a named result
E048  error     unknown action
E050  error     `retry_from` names no earlier step
E051  error     invalid or oversized regular expression
E052  error     const refers to itself
E053  error     workflow has no trigger
E054  error     invalid URL
E055  error     invalid environment variable name
E056  error     environment variable not set (check --env)
E057  error     expression nested too deeply once consts are substituted
W101  warning   event pattern matches no catalog event
W102  warning   const is never used
W103  warning   URL is http, not https
====  ========  ==============================================================
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from dsl.ast import Span

__all__ = [
    "Diagnostic",
    "Severity",
    "did_you_mean",
    "render_json",
    "render_text",
    "sort_diagnostics",
]


class Severity(StrEnum):
    """How bad a diagnostic is: errors block a rule set, warnings do not."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem in a rule file, with its stable code and position."""

    code: str
    message: str
    span: Span
    hint: str | None = None

    @property
    def severity(self) -> Severity:
        """Errors have codes starting with E, warnings with W."""
        return Severity.WARNING if self.code.startswith("W") else Severity.ERROR

    def headline(self) -> str:
        """`file:line:column: severity[CODE]: message`."""
        s = self.span
        return f"{s.file}:{s.line}:{s.column}: {self.severity}[{self.code}]: {self.message}"

    def as_dict(self) -> dict[str, object]:
        """The diagnostic as JSON-ready data (for pull-request annotations)."""
        s = self.span
        return {
            "file": s.file,
            "line": s.line,
            "column": s.column,
            "end_line": s.end_line,
            "end_column": s.end_column,
            "severity": str(self.severity),
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
        }


def sort_diagnostics(diagnostics: Iterable[Diagnostic]) -> tuple[Diagnostic, ...]:
    """Order by file and position, dropping exact repeats."""
    unique = {(d.span, d.code, d.message): d for d in diagnostics}
    return tuple(
        sorted(unique.values(), key=lambda d: (d.span.file, d.span.line, d.span.column, d.code))
    )


def render_text(diagnostics: Iterable[Diagnostic], sources: Mapping[str, str]) -> str:
    """Render like a compiler: headline, source line, carets under the span, hint."""
    blocks = [_render_one(d, sources.get(d.span.file)) for d in diagnostics]
    return "\n".join(blocks)


def render_json(diagnostics: Iterable[Diagnostic]) -> str:
    """Render as a JSON array of objects (see `Diagnostic.as_dict`)."""
    return json.dumps([d.as_dict() for d in diagnostics], indent=2)


def _render_one(d: Diagnostic, source: str | None) -> str:
    lines = [d.headline()]
    if source is not None:
        text_lines = source.splitlines()
        if 1 <= d.span.line <= len(text_lines):
            line = text_lines[d.span.line - 1].expandtabs(1)
            gutter = f"{d.span.line:>4} | "
            lines.append(gutter + line)
            start = max(d.span.column - 1, 0)
            if d.span.end_line == d.span.line and d.span.end_column > d.span.column:
                width = d.span.end_column - d.span.column
            else:
                width = max(len(line) - start, 1)
            marker = "^" + "~" * (max(width, 1) - 1)
            lines.append(" " * (len(gutter) - 2) + "| " + " " * start + marker)
    if d.hint:
        lines.append(f"  hint: {d.hint}")
    return "\n".join(lines) + "\n"


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A 'did you mean' hint from the closest candidate, if one is close enough."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else None
