"""The Ownly rule language: parse, check, compile and format rule files.

The engine calls `compile_rules` and reads the `RuleSet` it returns; the
command line uses `Compilation.render` and `format_source`.
"""

from __future__ import annotations

from dsl.checker import Compilation, compile_rules, rule_files
from dsl.diagnostics import Diagnostic, Severity, render_json, render_text
from dsl.errors import DslError, RuleCompileError, RuleSyntaxError
from dsl.evaluate import Context, Evaluator, compile_expr, truthy
from dsl.matcher import Subscription
from dsl.parser import ParseCache, parse, parse_expression
from dsl.ruleset import RuleSet

__all__ = [
    "Compilation",
    "Context",
    "Diagnostic",
    "DslError",
    "Evaluator",
    "ParseCache",
    "RuleCompileError",
    "RuleSet",
    "RuleSyntaxError",
    "Severity",
    "Subscription",
    "compile_expr",
    "compile_rules",
    "parse",
    "parse_expression",
    "render_json",
    "render_text",
    "rule_files",
    "truthy",
]
