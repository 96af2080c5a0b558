"""The per-file work of a compilation, in three stages.

1. `parse_files`: each file's syntax tree, or the diagnostic of its syntax error.
2. `learn`: over every file, in order: the definitions by name (duplicates
   reported) and the catalog.
3. `lower_files`: the webhooks that are the first of their name, lowered as
   `Lowering` would lower them one after another.

With a `ParseCache`, the webhooks are lowered file by file and kept there
with their context: the catalog and consts (a digest of the texts of the
files that define any) and which of the file's webhooks are the first of
their name, the only things lowering a webhook reads besides the webhook
itself. A recompilation after a change in a file of webhooks alone lowers
only that file's.
"""

from __future__ import annotations

import hashlib
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
from dsl.parser import FileKey, ParseCache, parse

__all__ = ["Learnt", "Parsed", "Source", "learn", "lower_files", "parse_files"]

_RESERVED_CONSTS = ("event", "incoming", "true", "false", "null", *FUNCTIONS)

# A rule file to compile: its text and its name.
Source = tuple[str, str]


@dataclass(slots=True)
class Parsed:
    """The files' syntax trees, in order, and the syntax errors of the others."""

    modules: list[ast.Module] = field(default_factory=list)
    keys: list[FileKey] = field(default_factory=list)  # of each tree, with a cache
    syntax: list[Diagnostic] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Learnt:
    """What every file defines: the definitions, the catalog and what was wrong with them."""

    defs: Definitions
    catalog: Catalog
    early: list[Diagnostic]  # duplicates, the catalog's problems
    context: str  # with a cache: a digest of the files that define events or consts, else ""


def parse_files(
    sources: Sequence[Source], cache: ParseCache | None, keys: Sequence[FileKey]
) -> Parsed:
    """Parse each file, or with a cache take its tree from there (`keys`: each file's, in order).

    The trees parsed now are kept in the cache.
    """
    parsed = Parsed()
    for position, (text, name) in enumerate(sources):
        key = keys[position] if cache is not None else None
        module = cache.tree(key) if cache is not None and key is not None else None
        if module is None:
            try:
                module = parse(text, name)
            except RuleSyntaxError as exc:
                parsed.syntax.extend(exc.diagnostics)
                continue
            if cache is not None and key is not None:
                cache.keep(key, module)
        parsed.modules.append(module)
        if key is not None:
            parsed.keys.append(key)
    return parsed


def learn(parsed: Parsed, *, cached: bool) -> Learnt:
    """The definitions of every file by name, and the catalog they make."""
    early: list[Diagnostic] = []
    defs = _collect(parsed.modules, early)

    def report(code: str, message: str, span: ast.Span, hint: str | None) -> None:
        early.append(Diagnostic(code, message, span, hint))

    catalog = build_catalog(defs.events.values(), report)
    context = _context(parsed.modules, parsed.keys) if cached else ""
    return Learnt(defs, catalog, early, context)


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


def _context(modules: Sequence[ast.Module], keys: Sequence[FileKey]) -> str:
    """A digest of the files (names and texts) that define the catalog or consts."""
    digest = hashlib.sha256()
    for module, (name, text_digest) in zip(modules, keys, strict=True):
        if any(isinstance(d, ast.EventDef | ast.ConstDef) for d in module.definitions):
            digest.update(f"{name}\0{text_digest}\0".encode())
    return digest.hexdigest()


def lower_files(learnt: Learnt, parsed: Parsed, cache: ParseCache | None) -> list[Lowered]:
    """Lower the webhooks that are the first of their name; with a cache, file by file.

    With a cache, a file's webhooks are taken from there when they were lowered
    in the same context, and kept there when they are lowered now.
    """
    if cache is None:
        return [_lower(learnt, parsed.modules)]
    parts: list[Lowered] = []
    first = learnt.defs.webhooks
    for module, key in zip(parsed.modules, parsed.keys, strict=True):
        hooks = (d for d in module.definitions if isinstance(d, ast.WebhookDef))
        context = (learnt.context, tuple(first.get(d.name) is d for d in hooks))
        lowered = cache.lowered(key, context)
        if lowered is None:
            lowered = _lower(learnt, [module])
            cache.keep_lowered(key, context, lowered)
        parts.append(lowered)
    return parts


def _lower(learnt: Learnt, modules: Sequence[ast.Module]) -> Lowered:
    low = Lowering(learnt.defs, learnt.catalog)
    first = learnt.defs.webhooks
    for module in modules:
        for definition in module.definitions:
            if isinstance(definition, ast.WebhookDef) and first.get(definition.name) is definition:
                webhook = lower_webhook(low, definition)
                if webhook is not None:
                    low.webhooks.append(webhook)
    return low.lowered()
