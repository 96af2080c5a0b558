"""The per-file work of a compilation, in the stages `dsl.parallel.split_stages` shares.

1. `parse_files`: each file's syntax tree, or the diagnostic of its syntax error.
2. `learn`: over every file, in order: the definitions by name (duplicates
   reported) and the catalog. A file parsed in the other process arrives
   `slim`: its webhooks without their bodies, which only their own lowering
   reads; every other definition whole (consts are substituted into the
   webhooks, events make the catalog).
3. `lower_files`: the webhooks of the files parsed here that are the first
   of their name, lowered as `Lowering` would lower them one after another.

So a large rule set's webhooks are parsed and lowered in the same process,
and only the lowered webhooks travel.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dsl import ast
from dsl.blocks import lower_webhook
from dsl.catalog import Catalog, build_catalog
from dsl.diagnostics import Diagnostic
from dsl.errors import RuleSyntaxError
from dsl.expr import FUNCTIONS
from dsl.lowering import Definitions, Lowered, Lowering
from dsl.parallel import Stages
from dsl.parser import ParseCache, parse

__all__ = ["Done", "Learnt", "Parsed", "Source", "file_stages"]

_RESERVED_CONSTS = ("event", "incoming", "true", "false", "null", *FUNCTIONS)

# A rule file to compile: its position in the compilation, its text and its name.
Source = tuple[int, str, str]


@dataclass(slots=True)
class Parsed:
    """Some files' syntax trees or syntax errors, and which trees were parsed now."""

    results: list[ast.Module | Diagnostic]
    fresh: list[tuple[int, ast.Module]]  # (position, tree) of those not from the cache


@dataclass(slots=True)
class Learnt:
    """What every file defines: the syntax errors, or the definitions and the catalog."""

    syntax: list[Diagnostic]
    defs: Definitions = field(default_factory=Definitions)
    catalog: Catalog | None = None
    early: list[Diagnostic] = field(default_factory=list)  # duplicates, the catalog's problems


@dataclass(slots=True)
class Done:
    """Some files' webhooks lowered (none after a syntax error), and their new trees."""

    lowered: Lowered | None
    fresh: list[tuple[int, ast.Module]]


def file_stages(cache: ParseCache | None, unreadable: bool) -> Stages[Source, Parsed, Learnt, Done]:
    """The stages over rule files; `unreadable`: some file could not be read (no checking)."""
    return Stages(
        functools.partial(parse_files, cache),
        slim,
        functools.partial(learn, unreadable),
        functools.partial(lower_files, cache is not None),
    )


def parse_files(cache: ParseCache | None, sources: Sequence[Source]) -> Parsed:
    parsed = Parsed([], [])
    for position, text, name in sources:
        module = cache.get(text, name) if cache is not None else None
        if module is None:
            try:
                module = parse(text, name)
            except RuleSyntaxError as exc:
                parsed.results.extend(exc.diagnostics)
                continue
            parsed.fresh.append((position, module))
        parsed.results.append(module)
    return parsed


def slim(parsed: Parsed) -> Parsed:
    """The files as the other process needs them: webhooks without bodies, no comments."""
    results: list[ast.Module | Diagnostic] = []
    for result in parsed.results:
        if isinstance(result, ast.Module):
            definitions = tuple(_slim(definition) for definition in result.definitions)
            result = ast.Module(result.file, definitions, ())
        results.append(result)
    return Parsed(results, [])


def _slim(definition: ast.Definition) -> ast.Definition:
    if isinstance(definition, ast.WebhookDef):
        return ast.WebhookDef(definition.span, definition.name, definition.name_span, ())
    return definition


def learn(unreadable: bool, parts: list[Parsed]) -> Learnt:
    modules: list[ast.Module] = []
    syntax: list[Diagnostic] = []
    for part in parts:
        for result in part.results:
            if isinstance(result, ast.Module):
                modules.append(result)
            else:
                syntax.append(result)
    learnt = Learnt(syntax)
    if unreadable or syntax:
        # Later checks would report every reference into the broken file.
        return learnt
    learnt.defs = _collect(modules, learnt.early)

    def report(code: str, message: str, span: ast.Span, hint: str | None) -> None:
        learnt.early.append(Diagnostic(code, message, span, hint))

    learnt.catalog = build_catalog(learnt.defs.events.values(), report)
    return learnt


def _collect(modules: Sequence[ast.Module], report: list[Diagnostic]) -> Definitions:
    defs = Definitions()
    tables: dict[type, tuple[str, dict[str, Any]]] = {
        ast.EventDef: ("event", defs.events),
        ast.WebhookDef: ("webhook", defs.webhooks),
        ast.TemplateDef: ("template", defs.templates),
        ast.HookDef: ("hook", defs.hooks),
        ast.WorkflowDef: ("workflow", defs.workflows),
        ast.ConstDef: ("const", defs.consts),
    }
    for module in modules:
        for definition in module.definitions:
            kind, table = tables[type(definition)]
            first = table.get(definition.name)
            if first is not None:
                where = f"{first.span.file}:{first.span.line}"
                message = f"{kind} '{definition.name}' is already defined at {where}"
                report.append(Diagnostic("E010", message, definition.name_span))
            elif isinstance(definition, ast.ConstDef) and definition.name in _RESERVED_CONSTS:
                message = f"'{definition.name}' is a reserved name"
                report.append(Diagnostic("E010", message, definition.name_span))
            else:
                table[definition.name] = definition
    return defs


def lower_files(keep: bool, learnt: Learnt, parsed: Parsed) -> Done:
    """Lower the webhooks first defined in these files; `keep`: send their new trees back."""
    fresh = parsed.fresh if keep else []
    if learnt.catalog is None:
        return Done(None, fresh)
    low = Lowering(learnt.defs, learnt.catalog)
    first = learnt.defs.webhooks
    for result in parsed.results:
        if not isinstance(result, ast.Module):
            continue
        for definition in result.definitions:
            if isinstance(definition, ast.WebhookDef) and first.get(definition.name) is definition:
                webhook = lower_webhook(low, definition)
                if webhook is not None:
                    low.webhooks.append(webhook)
    return Done(low.lowered(), fresh)
