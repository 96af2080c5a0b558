"""The checker: parse rule files, check every definition, and build the compiled rule set."""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from dsl import ir
from dsl.blocks import lower_hook, lower_template
from dsl.diagnostics import Diagnostic, Severity, render_json, render_text, sort_diagnostics
from dsl.errors import RuleCompileError, RuleSyntaxError
from dsl.lowering import Lowered, Lowering
from dsl.parser import ParseCache, file_key, read_source
from dsl.ruleset import RuleSet
from dsl.stages import Learnt, Source, learn, lower_files, parse_files
from dsl.workflows import lower_workflow

__all__ = ["Compilation", "compile_rules", "rule_files"]

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Compilation:
    """The outcome of compiling rule files: a rule set when there are no errors."""

    rule_set: RuleSet | None
    diagnostics: tuple[Diagnostic, ...]
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when there are no errors (warnings allowed)."""
        return not self.errors

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity is Severity.WARNING)

    def require(self) -> RuleSet:
        """The rule set.

        Raises:
            RuleCompileError: the rule files have errors; it carries all diagnostics.
        """
        if self.rule_set is None:
            raise RuleCompileError(self.errors)
        return self.rule_set

    def render(self, fmt: str = "text") -> str:
        """The diagnostics as compiler-style text or as JSON."""
        if fmt == "json":
            return render_json(self.diagnostics)
        return render_text(self.diagnostics, self.sources)


def rule_files(paths: Iterable[Path]) -> list[Path]:
    """The `.ownly` files named by `paths` (directories are searched recursively)."""
    found: dict[Path, None] = {}
    for path in paths:
        if path.is_dir():
            found.update(dict.fromkeys(sorted(path.rglob("*.ownly"))))
        else:
            found[path] = None
    return list(found)


def _display(path: Path) -> str:
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)
    return str(path) if relative.startswith("..") else relative


def compile_rules(
    paths: Sequence[Path],
    *,
    templates_dir: Path,
    env: Mapping[str, str] | None = None,
    cache: ParseCache | None = None,
) -> Compilation:
    """Parse, check and compile rule files.

    Args:
        paths: rule files or directories of them.
        templates_dir: where template files named by `template` blocks live.
        env: when given, env() variables without a default must be set in it.
        cache: parsed files to reuse; files whose text is unchanged are not re-parsed.

    Returns:
        A `Compilation`; its `rule_set` is None when there is any error.
    """
    with _collector_paused():
        return _compile(paths, templates_dir, env, cache)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Hold off Python's cycle collector while a rule set is built.

    Compiling makes millions of objects that all stay alive (syntax trees, IR),
    and each full collection walks every one of them again: with 10,000 rules
    that was about a third of the time. Nothing is freed later than it would
    have been by reference counting; cycles wait until the collector resumes.
    The objects made meanwhile are all still in the youngest generation, whose
    first collection would walk them all (0.16 s for 10,000 rules): they go to
    the oldest one instead (frozen, then unfrozen), where survivors end anyway.
    Not where objects were frozen before (the engine freezes what it starts
    with): unfreezing would take those back too.
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            if not gc.get_freeze_count():
                gc.freeze()
                gc.unfreeze()
            gc.enable()


def _compile(
    paths: Sequence[Path],
    templates_dir: Path,
    env: Mapping[str, str] | None,
    cache: ParseCache | None,
) -> Compilation:
    sources: list[Source] = []
    diagnostics: list[Diagnostic] = []
    for path in rule_files(paths):
        name = _display(path)
        try:
            sources.append((read_source(path, name), name))
        except RuleSyntaxError as exc:
            diagnostics.append(exc.diagnostic)
    texts = {name: text for text, name in sources}
    keys = [file_key(text, name) for text, name in sources] if cache is not None else []
    parsed = parse_files(sources, cache, keys)
    diagnostics += parsed.syntax
    if diagnostics:
        # Later checks would report every reference into a broken or unread file.
        return Compilation(None, sort_diagnostics(diagnostics), texts)
    learnt = learn(parsed, cached=cache is not None)
    webhooks = lower_files(learnt, parsed, cache)
    low = _check(learnt, webhooks, templates_dir)
    if env is not None:
        _check_env(low, env)
    result = sort_diagnostics(low.diagnostics)
    if any(d.severity is Severity.ERROR for d in result):
        return Compilation(None, result, texts)
    return Compilation(_build(low), result, texts)


def _check(learnt: Learnt, webhooks: list[Lowered], templates_dir: Path) -> Lowering:
    defs = learnt.defs
    low = Lowering(defs, learnt.catalog)
    low.diagnostics.extend(learnt.early)
    for template in defs.templates.values():
        _keep(low.templates, lower_template(low, template, templates_dir))
    for hook in defs.hooks.values():
        _keep(low.hooks, lower_hook(low, hook))
    for part in webhooks:  # lowered file by file with a cache (`dsl.stages`)
        low.join(part)
    for workflow in defs.workflows.values():
        _keep(low.workflows, lower_workflow(low, workflow))
    # Every string of every definition, once; the webhooks' where they are lowered.
    for table in (defs.events, defs.consts, defs.templates, defs.hooks, defs.workflows):
        for definition in table.values():
            low.refuse_secrets(definition)
    for name, const in defs.consts.items():
        if name not in low.used_consts:
            low.report("W102", f"const '{name}' is never used", const.name_span, None)
    return low


def _keep(into: list[_T], item: _T | None) -> None:
    if item is not None:
        into.append(item)


def _check_env(low: Lowering, env: Mapping[str, str]) -> None:
    for name, has_default in sorted(low.env.items()):
        if not has_default and name not in env:
            span = low.env_spans[name]
            low.report("E056", f"environment variable {name} is not set", span, None)


def _build(low: Lowering) -> RuleSet:
    rules = ir.RuleSetIR(
        events=tuple(sorted((e.spec for e in low.catalog.events.values()), key=lambda e: e.type)),
        webhooks=tuple(sorted(low.webhooks, key=lambda w: w.name)),
        templates=tuple(sorted(low.templates, key=lambda t: t.name)),
        hooks=tuple(sorted(low.hooks, key=lambda h: h.name)),
        workflows=tuple(sorted(low.workflows, key=lambda w: w.name)),
        env=tuple(
            ir.EnvRequirement(name=name, has_default=has) for name, has in sorted(low.env.items())
        ),
        files=tuple(ir.TemplateFile(path=p, sha256=d) for p, d in sorted(low.files.items())),
    )
    return RuleSet(rules, low.expressions)
