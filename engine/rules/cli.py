"""`ownly check`, `ownly fmt` and `ownly simulate`: the rule-file commands.

Exit codes: 0 clean, 1 errors (or warnings with --strict, or files to
reformat with fmt --check), 2 usage errors.
"""

from __future__ import annotations

import difflib
import json
import os
import sys
import tomllib
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dsl import (
    Compilation,
    Context,
    DslError,
    RuleSet,
    compile_rules,
    ir,
    parse_expression,
    rule_files,
)
from dsl.diagnostics import did_you_mean, render_json, render_text
from dsl.expr import walk
from dsl.fmt import format_source

if TYPE_CHECKING:
    from dsl.render import Renderer
    from engine.events.bus import StoredEvent
    from engine.events.ingest import Problem

__all__ = ["check", "configured", "fmt", "simulate"]

_PATHS = click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
_TEMPLATES = click.option(
    "--templates",
    "templates_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory of the email template files [default: from ownly.toml, else templates].",
)


def configured() -> tuple[list[Path], Path]:
    """Rule paths and templates directory from the root `--config` file, when there is one.

    Only the `[rules]` and `[templates]` tables are read, so a check in CI does not
    need the secrets the rest of the configuration refers to.
    """
    defaults = ([Path("rules")], Path("templates"))
    ctx = click.get_current_context(silent=True)
    config = ctx.find_root().obj if ctx is not None else None
    if not isinstance(config, Path) or not config.is_file():
        return defaults
    try:
        raw = tomllib.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return defaults
    base = config.parent
    rules = raw.get("rules", {}).get("paths") if isinstance(raw.get("rules"), dict) else None
    templates = (
        raw.get("templates", {}).get("path") if isinstance(raw.get("templates"), dict) else None
    )
    paths = [base / p for p in rules if isinstance(p, str)] if isinstance(rules, list) else []
    return paths or defaults[0], base / templates if isinstance(templates, str) else defaults[1]


def _paths(paths: Sequence[Path]) -> list[Path]:
    return list(paths) or configured()[0]


def _templates(templates_dir: Path | None) -> Path:
    return templates_dir if templates_dir is not None else configured()[1]


def _summary(compilation: Compilation) -> str:
    errors, warnings = len(compilation.errors), len(compilation.warnings)
    if compilation.rule_set is None:
        return f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
    rules = compilation.rule_set
    return (
        f"ok: {len(rules.events)} events, {len(rules.webhooks)} webhooks, "
        f"{len(rules.templates)} templates, {len(rules.workflows)} workflows; "
        f"{warnings} warning{'s' * (warnings != 1)}; version {rules.version[:12]}"
    )


@click.command()
@_PATHS
@_TEMPLATES
@click.option("--strict", is_flag=True, help="Warnings fail the check too.")
@click.option(
    "--format",
    "output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Diagnostics as compiler-style text or as JSON (for pull-request annotations).",
)
@click.option("--env", "use_env", is_flag=True, help="Also require every env() variable to be set.")
def check(
    paths: tuple[Path, ...], templates_dir: Path | None, strict: bool, output: str, use_env: bool
) -> None:
    """Check rule files: syntax, references, types, templates, secrets."""
    env = dict(os.environ) if use_env else None
    compilation = compile_rules(_paths(paths), templates_dir=_templates(templates_dir), env=env)
    if output == "json":
        click.echo(render_json(compilation.diagnostics))
    elif compilation.diagnostics:
        click.echo(render_text(compilation.diagnostics, compilation.sources))
    click.echo(_summary(compilation), err=True)
    failed = not compilation.ok or (strict and compilation.warnings)
    sys.exit(1 if failed else 0)


@click.command()
@_PATHS
@click.option(
    "--check", "check_only", is_flag=True, help="Change nothing; fail if a file would change."
)
def fmt(paths: tuple[Path, ...], check_only: bool) -> None:
    """Format rule files in the one canonical layout."""
    failed = False
    for path in rule_files(_paths(paths)):
        text = path.read_text(encoding="utf-8-sig")
        try:
            formatted = format_source(text, str(path))
        except DslError as exc:
            diagnostics = getattr(exc, "diagnostics", None)  # every syntax error of the file
            message = render_text(list(diagnostics), {str(path): text}) if diagnostics else str(exc)
            click.echo(message, err=True)
            failed = True
            continue
        if formatted == text:
            continue
        if check_only:
            click.echo(f"would reformat {path}")
            diff = difflib.unified_diff(
                text.splitlines(keepends=True),
                formatted.splitlines(keepends=True),
                f"{path}",
                f"{path} (formatted)",
            )
            click.echo("".join(diff), nl=False)
            failed = True
        else:
            path.write_text(formatted, encoding="utf-8")
            click.echo(f"formatted {path}")
    sys.exit(1 if failed else 0)


@click.command()
@click.argument("event_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_PATHS
@_TEMPLATES
@click.option(
    "--format", "output", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def simulate(
    event_file: Path, paths: tuple[Path, ...], templates_dir: Path | None, output: str
) -> None:
    """Show what an event would trigger under the current rules, and why the rest would not."""
    try:
        event = json.loads(event_file.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="EVENT.json") from None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise click.BadParameter(
            'an event is an object with "type" and "data"', param_hint="EVENT.json"
        )
    templates_dir = _templates(templates_dir)
    compilation = compile_rules(_paths(paths), templates_dir=templates_dir)
    if compilation.rule_set is None:
        click.echo(render_text(compilation.diagnostics, compilation.sources), err=True)
        click.echo(_summary(compilation), err=True)
        sys.exit(1)
    rules = compilation.rule_set
    if event["type"] not in rules.events:
        hint = did_you_mean(event["type"], rules.events) or ""
        click.echo(f"error: unknown event type {event['type']!r}. {hint}".rstrip(), err=True)
        sys.exit(1)
    report = _simulate(rules, event, templates_dir)
    if output == "json":
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        click.echo(_render_report(report))


def _stored(
    event: dict[str, Any], rules: RuleSet, now: datetime
) -> tuple[StoredEvent, list[Problem]]:
    """``event`` as the engine would store it, and why the engine would refuse it.

    It is read and checked as ``POST /api/events`` does (the catalog's
    defaults filled); with any problem the engine would store nothing.
    """
    # Here, not at the top: `ownly check` and `ownly fmt` need none of the engine.
    from engine.events.bus import StoredEvent
    from engine.events.ingest import check_event, read_event

    incoming = read_event(event)
    check_event(incoming, rules, accept_unknown_types=False)
    stored = StoredEvent(
        id=incoming.id or "evt_simulated",
        type=incoming.type,
        data=incoming.data,
        occurred_at=incoming.occurred_at or now,
        received_at=now,
        source=incoming.source or "simulate",
        subject=incoming.subject,
    )
    return stored, incoming.problems


def _simulate(rules: RuleSet, event: dict[str, Any], templates_dir: Path) -> dict[str, Any]:
    """What the bus would plan for ``event``: matched through the bus's own ``match``."""
    from dsl.render import Renderer  # see _stored
    from engine.events.bus import event_context, match

    now = datetime.now(UTC)
    stored, problems = _stored(event, rules, now)
    environ = dict(os.environ)
    context = event_context(stored, rules, now, environ)
    matches = match(rules, stored, now, environ, refused=True)
    renderer = Renderer.compile(rules, templates_dir)
    fired: list[dict[str, Any]] = []
    for sub in matches.accepted:
        entry: dict[str, Any] = {"kind": sub.kind, "name": sub.name, "pattern": sub.pattern}
        if sub.kind == "workflow":
            workflow = rules.workflows[sub.name]
            entry["emails"] = list(_emails(rules, workflow.steps, context, renderer))
        fired.append(entry)
    skipped = [
        {"kind": s.kind, "name": s.name, "pattern": s.pattern, "because": f"when {s.when} is false"}
        for s in matches.refused
    ]
    return {
        "event": stored.type,
        "version": rules.version,
        "problems": [problem.as_dict() for problem in problems],
        "fired": fired,
        "skipped": skipped,
    }


def _send_email_steps(steps: Iterable[ir.Step]) -> Iterator[ir.SendEmailStep]:
    for step in steps:
        if isinstance(step, ir.SendEmailStep):
            yield step
        elif isinstance(step, ir.IfStep):
            for branch in step.branches:
                yield from _send_email_steps(branch.steps)
        elif isinstance(step, ir.ParallelStep):
            yield from _send_email_steps(step.steps)
        elif isinstance(step, ir.WaitForStep) and step.on_timeout:
            yield from _send_email_steps(step.on_timeout)


def _roots(expression: str) -> set[str]:
    return {n.parts[0] for n in walk(parse_expression(expression)) if hasattr(n, "parts")}


def _emails(
    rules: RuleSet, steps: Sequence[ir.Step], context: Context, renderer: Renderer
) -> Iterator[dict[str, Any]]:
    from dsl.render import RenderError  # here: `ownly check` needs no CSS inliner

    for step in _send_email_steps(steps):
        entry: dict[str, Any] = {"template": step.template}
        expressions = [step.to, *(a.expr for a in step.variables or ())]
        if any(_roots(e) - {"event"} for e in expressions):
            entry["note"] = "depends on the results of earlier steps; not rendered"
            yield entry
            continue
        entry["to"] = rules.evaluate(step.to, context)
        if step.variables is None:
            event = context.values["event"]
            data = event.get("data", {}) if isinstance(event, dict) else {}
            variables = dict(data) if isinstance(data, dict) else {}
        else:
            variables = {a.name: rules.evaluate(a.expr, context) for a in step.variables}
        try:
            email = renderer.render(step.template, variables)
        except RenderError as exc:
            entry["error"] = f"cannot render: {exc}"
        else:
            entry["subject"] = email.subject
            entry["html"] = email.html
            entry["text"] = email.text
        yield entry


def _render_report(report: dict[str, Any]) -> str:
    lines = [f"event {report['event']} (rule set {report['version'][:12]})"]
    for problem in report["problems"]:
        lines.append(f"  refused {problem['path']}: {problem['reason']}")
    if report["problems"]:
        lines.append("          (the engine would answer 422 and store nothing)")
    if not report["fired"] and not report["skipped"]:
        lines.append("  nothing subscribes to this event")
    for entry in report["fired"]:
        lines.append(f"  fires   {entry['kind']} {entry['name']}  (matches {entry['pattern']})")
        for email in entry.get("emails", []):
            if "subject" in email:
                lines.append(
                    f"          sends {email['template']} to {email['to']}: {email['subject']!r}"
                )
                lines += [f"          | {line}".rstrip() for line in email["text"].splitlines()]
            else:
                reason = email.get("note") or email.get("error")
                lines.append(f"          sends {email['template']}: {reason}")
    for entry in report["skipped"]:
        lines.append(f"  skips   {entry['kind']} {entry['name']}  ({entry['because']})")
    return "\n".join(lines)
