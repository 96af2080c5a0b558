"""Diagnostics render like a compiler's, and as JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path

import dsl.diagnostics
from dsl import Diagnostic, ast, render_json, render_text
from dsl.errors import DslError, RuleCompileError, RuleSyntaxError

SOURCE = "webhook w {\n  when\tevent.data.amout >= 10\n}\n"
SPAN = ast.Span("rules/webhooks.ownly", 2, 8, 2, 24)


def test_text_rendering_has_headline_source_line_carets_and_hint() -> None:
    diagnostic = Diagnostic("E012", "unknown field 'amout'", SPAN, "did you mean 'amount'?")
    text = render_text([diagnostic], {"rules/webhooks.ownly": SOURCE})
    assert text.splitlines() == [
        "rules/webhooks.ownly:2:8: error[E012]: unknown field 'amout'",
        "   2 |   when event.data.amout >= 10",
        "     |        ^~~~~~~~~~~~~~~~",
        "  hint: did you mean 'amount'?",
    ]


def test_warnings_and_missing_sources() -> None:
    diagnostic = Diagnostic("W101", "pattern 'x.*' matches no event", SPAN)
    assert render_text([diagnostic], {}) == (
        "rules/webhooks.ownly:2:8: warning[W101]: pattern 'x.*' matches no event\n"
    )


def test_json_rendering() -> None:
    diagnostic = Diagnostic("E012", "unknown field 'amout'", SPAN, "did you mean 'amount'?")
    (data,) = json.loads(render_json([diagnostic]))
    assert data == {
        "file": "rules/webhooks.ownly",
        "line": 2,
        "column": 8,
        "end_line": 2,
        "end_column": 24,
        "severity": "error",
        "code": "E012",
        "message": "unknown field 'amout'",
        "hint": "did you mean 'amount'?",
    }


def test_every_code_the_checker_uses_is_documented() -> None:
    table = dsl.diagnostics.__doc__ or ""
    documented = set(re.findall(r"^([EW]\d{3})\s", table, re.MULTILINE))
    package = Path(dsl.diagnostics.__file__).parent
    used = set()
    for path in package.glob("*.py"):
        used |= set(re.findall(r'"([EW]\d{3})"', path.read_text()))
    assert used <= documented
    docs = (package.parent / "docs" / "language.md").read_text()
    assert documented <= set(re.findall(r"\| ([EW]\d{3}) \|", docs))


def test_error_classes_share_one_root_and_default_messages() -> None:
    diagnostic = Diagnostic("E001", "unexpected '}'", SPAN)
    assert issubclass(RuleSyntaxError, DslError)
    assert issubclass(RuleCompileError, DslError)
    assert str(RuleSyntaxError(diagnostic)) == diagnostic.headline()
    assert str(DslError()) == "The rule language reported a problem."
    assert RuleCompileError((diagnostic,)).diagnostics == (diagnostic,)
