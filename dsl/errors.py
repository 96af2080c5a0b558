"""Errors raised by the rule language.

Everything the language raises derives from `DslError`::

    DslError
    ├── RuleSyntaxError      a file does not parse (carries its Diagnostics)
    └── RuleCompileError     a rule set has errors (carries all Diagnostics)

Compiled expressions raise nothing: evaluation is total.

Diagnostics are the normal way to report problems in rule files; these
exceptions exist for callers that want to stop at the first problem.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dsl.diagnostics import Diagnostic

__all__ = ["DslError", "RuleCompileError", "RuleSyntaxError"]


class DslError(Exception):
    """The rule language reported a problem."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (type(self).__doc__ or "").strip())


class RuleSyntaxError(DslError):
    """A rule file does not parse.

    `diagnostic` is its first syntax error; `diagnostics` holds it and those found
    further on, each in a later top-level definition.
    """

    def __init__(self, diagnostic: Diagnostic, more: tuple[Diagnostic, ...] = ()) -> None:
        super().__init__(diagnostic.headline())
        self.diagnostic = diagnostic
        self.diagnostics = (diagnostic, *more)


class RuleCompileError(DslError):
    """The rule set has errors."""

    def __init__(self, diagnostics: tuple[Diagnostic, ...]) -> None:
        first = diagnostics[0].headline() if diagnostics else None
        super().__init__(first)
        self.diagnostics = diagnostics
