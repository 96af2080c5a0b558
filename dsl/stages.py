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

With a `ParseCache`, the webhooks are lowered file by file and kept there
with their context: the catalog and consts (a digest of the texts of the
files that define any) and which of the file's webhooks are the first of
their name, the only things lowering a webhook reads besides the webhook
itself. A recompilation after a change in a file of webhooks alone lowers
only that file's.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Hashable, Sequence
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
from dsl.parser import FileKey, ParseCache, parse

__all__ = ["Done", "Learnt", "Parsed", "Source", "file_stages"]

_RESERVED_CONSTS = ("event", "incoming", "true", "false", "null", *FUNCTIONS)

# A rule file to compile: its position in the compilation, its text and its name.
Source = tuple[int, str, str]


@dataclass(slots=True)
class Parsed:
    """Some files' syntax trees or syntax errors, and which trees were parsed now."""

    results: list[ast.Module | Diagnostic]
    fresh: list[tuple[int, ast.Module]]  # (position, tree) of those not from the cache
    keys: list[FileKey] = field(default_factory=list)  # of each tree, with a cache


@dataclass(slots=True)
class Learnt:
    """What every file defines: the syntax errors, or the definitions and the catalog."""

    syntax: list[Diagnostic]
    defs: Definitions = field(default_factory=Definitions)
    catalog: Catalog | None = None
    early: list[Diagnostic] = field(default_factory=list)  # duplicates, the catalog's problems
    context: str = ""  # with a cache: a digest of the files that define events or consts


@dataclass(slots=True)
class Done:
    """Some files' webhooks lowered (none after a syntax error), and their new trees.

    `lowered` holds one part for all the files, or with a cache one a file,
    of which `relowered` names those not from the cache, to keep there.
    """

    lowered: list[Lowered]
    fresh: list[tuple[int, ast.Module]]
    relowered: list[tuple[FileKey, Hashable, Lowered]] = field(default_factory=list)


def file_stages(
    cache: ParseCache | None, unreadable: bool, keys: Sequence[FileKey] = ()
) -> Stages[Source, Parsed, Learnt, Done]:
    """The stages over rule files; `unreadable`: some file could not be read (no checking).

    With a cache, `keys` holds each file's key in it, by position (hashed once).
    """
    return Stages(
        functools.partial(parse_files, cache, keys),
        slim,
        functools.partial(learn, unreadable, cache is not None),
        functools.partial(lower_files, cache),
    )


def parse_files(
    cache: ParseCache | None, keys: Sequence[FileKey], sources: Sequence[Source]
) -> Parsed:
    parsed = Parsed([], [])
    for position, text, name in sources:
        key = keys[position] if cache is not None else None
        module = cache.tree(key) if cache is not None and key is not None else None
        if module is None:
            try:
                module = parse(text, name)
            except RuleSyntaxError as exc:
                parsed.results.extend(exc.diagnostics)
                continue
            parsed.fresh.append((position, module))
        parsed.results.append(module)
        if key is not None:
            parsed.keys.append(key)
    return parsed


def slim(parsed: Parsed) -> Parsed:
    """The files as the other process needs them: webhooks without bodies, no comments."""
    results: list[ast.Module | Diagnostic] = []
    for result in parsed.results:
        if isinstance(result, ast.Module):
            definitions = tuple(_slim(definition) for definition in result.definitions)
            result = ast.Module(result.file, definitions, ())
        results.append(result)
    return Parsed(results, [], parsed.keys)


def _slim(definition: ast.Definition) -> ast.Definition:
    if isinstance(definition, ast.WebhookDef):
        return ast.WebhookDef(definition.span, definition.name, definition.name_span, ())
    return definition


def learn(unreadable: bool, cached: bool, parts: list[Parsed]) -> Learnt:
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
    if cached:
        keys = [key for part in parts for key in part.keys]
        learnt.context = _context(modules, keys)

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


def _context(modules: Sequence[ast.Module], keys: Sequence[FileKey]) -> str:
    """A digest of the files (names and texts) that define the catalog or consts."""
    digest = hashlib.sha256()
    for module, (name, text_digest) in zip(modules, keys, strict=True):
        if any(isinstance(d, ast.EventDef | ast.ConstDef) for d in module.definitions):
            digest.update(f"{name}\0{text_digest}\0".encode())
    return digest.hexdigest()


def lower_files(cache: ParseCache | None, learnt: Learnt, parsed: Parsed) -> Done:
    """Lower the webhooks first defined in these files; with a cache, file by file."""
    catalog = learnt.catalog
    modules = [result for result in parsed.results if isinstance(result, ast.Module)]
    if cache is None:
        return Done([] if catalog is None else [_lower(learnt, catalog, modules)], [])
    done = Done([], parsed.fresh)
    if catalog is None:
        return done
    first = learnt.defs.webhooks
    for module, key in zip(modules, parsed.keys, strict=True):
        hooks = (d for d in module.definitions if isinstance(d, ast.WebhookDef))
        context = (learnt.context, tuple(first.get(d.name) is d for d in hooks))
        lowered = cache.lowered(key, context)
        if lowered is None:
            lowered = _lower(learnt, catalog, [module])
            done.relowered.append((key, context, lowered))
        done.lowered.append(lowered)
    return done


def _lower(learnt: Learnt, catalog: Catalog, modules: Sequence[ast.Module]) -> Lowered:
    low = Lowering(learnt.defs, catalog)
    first = learnt.defs.webhooks
    for module in modules:
        for definition in module.definitions:
            if isinstance(definition, ast.WebhookDef) and first.get(definition.name) is definition:
                webhook = lower_webhook(low, definition)
                if webhook is not None:
                    low.webhooks.append(webhook)
    return low.lowered()
