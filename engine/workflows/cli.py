"""``ownly workflows ...``, ``ownly graph`` and ``ownly new workflow``.

``workflows`` operates the running engine's workflows and their runs through
its HTTP API (``engine.http.client``). ``graph`` and ``new workflow`` read and
write the rule files here and need no engine, as ``ownly check``: the rule
paths and templates directory are the ``[rules]`` and ``[templates]`` of
``ownly.toml``, else ``rules/`` and ``templates/``.
"""

from __future__ import annotations

import json
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from engine.http.client import Api, api_for, console, json_option, short_time, url_option
from engine.workflows.authoring import library

__all__ = ["graph", "new", "workflows"]

_SCOPES = "workflows:read and workflows:write"


def _path(*parts: str) -> str:
    """``/api/workflows/<part>/...``, each part quoted as one path segment."""
    return "/".join(["/api/workflows", *(urllib.parse.quote(p, safe="") for p in parts)])


def _api(ctx: click.Context, url: str | None) -> Api:
    return api_for(ctx, url, _SCOPES)


def _print_json(body: object) -> None:
    click.echo(json.dumps(body, indent=2))


def _trigger(trigger: dict[str, Any]) -> str:
    shown = {
        "schedule": trigger.get("cron"),
        "webhook": trigger.get("hook"),
        "manual": None,
    }.get(trigger["type"], ", ".join(trigger.get("events", ())))
    return f"{trigger['type']} {shown}" if shown else trigger["type"]


def _seconds(value: object) -> str:
    return f"{value:.3f}s" if isinstance(value, int | float) else "-"


@click.group()
def workflows() -> None:
    """Operate workflows on the running engine: list, runs, show, execute, cancel, rerun."""


@workflows.command("list")
@url_option
@json_option
@click.pass_context
def list_workflows(ctx: click.Context, url: str | None, as_json: bool) -> None:
    """Every workflow with its state, triggers and run statistics."""
    body = _api(ctx, url).call("GET", "/api/workflows")
    if as_json:
        _print_json(body)
        return
    table = Table("workflow", "status", "triggers", "runs", "failed", "last run", "defined at")
    for flow in body["workflows"]:
        runs = flow["statistics"]["runs"]
        table.add_row(
            escape(flow["id"]),
            flow["status"],
            escape("; ".join(_trigger(t) for t in flow["triggers"])),
            str(sum(runs.values())),
            str(runs.get("failed", 0)),
            short_time(flow["statistics"].get("last_run_at")),
            escape(f"{flow['file']}:{flow['line']}"),
        )
    console().print(table)


@workflows.command()
@click.argument("name")
@click.option(
    "--status", help="pending, queued, running, sleeping, waiting, completed, failed, ..."
)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500))
@click.option("--cursor", help="The next_cursor of a previous page.")
@url_option
@json_option
@click.pass_context
def runs(
    ctx: click.Context,
    name: str,
    status: str | None,
    limit: int,
    cursor: str | None,
    url: str | None,
    as_json: bool,
) -> None:
    """A workflow's runs, newest first."""
    query = {"status": status or "", "limit": str(limit), "cursor": cursor or ""}
    body = _api(ctx, url).call("GET", _path(name, "executions"), query=query)
    if as_json:
        _print_json(body)
        return
    table = Table("run", "status", "trigger", "step", "created", "duration", "error")
    for run in body["executions"]:
        table.add_row(
            run["id"],
            run["status"],
            escape(run["trigger"]),
            escape(run["current_step"] or "-"),
            short_time(run["created_at"]),
            _seconds(run["duration_seconds"]),
            escape((run["error"] or "")[:60]),
        )
    out = console()
    out.print(table)
    if body["next_cursor"]:
        out.print(f"more: --cursor {body['next_cursor']}")


@workflows.command()
@click.argument("run")
@url_option
@json_option
@click.pass_context
def show(ctx: click.Context, run: str, url: str | None, as_json: bool) -> None:
    """One run: its state, then each step with its status, attempts and error."""
    body = _api(ctx, url).call("GET", _path("executions", run))
    if as_json:
        _print_json(body)
        return
    out = console()
    out.print(f"run {body['id']} of {escape(body['workflow'])}: {body['status']}")
    out.print(f"  trigger {escape(body['trigger'])}, version {body['version'][:12]}")
    if body["rerun_of"]:
        out.print(f"  a rerun of {body['rerun_of']}")
    if body["current_step"]:
        out.print(f"  at step {escape(body['current_step'])}")
    if body["error"]:
        out.print(f"  error: {escape(body['error'])}")
    table = Table("step", "round", "kind", "status", "attempts", "started", "duration", "error")
    for step in body["steps"]:
        table.add_row(
            escape(step["step"]),
            str(step["round"]),
            step["kind"],
            step["status"],
            str(step["attempts"]),
            short_time(step["started_at"]),
            _seconds(step["duration_seconds"]),
            escape((step["error"] or "")[:60]),
        )
    out.print(table)


def _data(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--data") from None
    if not isinstance(data, dict):
        raise click.BadParameter("the run's input is a JSON object", param_hint="--data")
    return data


@workflows.command()
@click.argument("name")
@click.option(
    "--data",
    "data_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A JSON object: the run's event.data [default: {}].",
)
@url_option
@click.pass_context
def execute(ctx: click.Context, name: str, data_file: Path | None, url: str | None) -> None:
    """Start a run of workflow NAME (it needs `on manual`)."""
    body = _api(ctx, url).call("POST", _path(name, "execute"), {"data": _data(data_file)})
    click.echo(f"started {body['id']} ({body['status']})")


@workflows.command()
@click.argument("run")
@url_option
@click.pass_context
def cancel(ctx: click.Context, run: str, url: str | None) -> None:
    """Cancel a run that has not ended."""
    body = _api(ctx, url).call("POST", _path("executions", run, "cancel"))
    click.echo(f"{body['id']}: {body['status']}")


@workflows.command()
@click.argument("run")
@click.option("--from", "step", required=True, help="The step id to run again from.")
@url_option
@click.pass_context
def rerun(ctx: click.Context, run: str, step: str, url: str | None) -> None:
    """Start a new run of RUN's workflow and version, keeping the steps before --from."""
    body = _api(ctx, url).call("POST", _path("executions", run, "rerun"), {"from": step})
    click.echo(f"started {body['id']}: a rerun of {body['rerun_of']} from {body['from']}")


@workflows.command()
@click.argument("name")
@url_option
@click.pass_context
def pause(ctx: click.Context, name: str, url: str | None) -> None:
    """Start no more runs of workflow NAME until it is activated."""
    body = _api(ctx, url).call("POST", _path(name, "pause"))
    click.echo(f"{body['id']}: {body['status']}")


@workflows.command()
@click.argument("name")
@url_option
@click.pass_context
def activate(ctx: click.Context, name: str, url: str | None) -> None:
    """Start runs of workflow NAME again."""
    body = _api(ctx, url).call("POST", _path(name, "activate"))
    click.echo(f"{body['id']}: {body['status']}")


# ---- the rule files here

_TEMPLATES_DIR = click.option(
    "--templates",
    "templates_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory of the email template files [default: from ownly.toml, else templates].",
)


@click.command()
@click.argument("workflow")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--format",
    "output",
    type=click.Choice(["mermaid", "dot"]),
    default="mermaid",
    show_default=True,
    help="A Mermaid flowchart or a Graphviz digraph.",
)
@_TEMPLATES_DIR
def graph(workflow: str, paths: tuple[Path, ...], output: str, templates_dir: Path | None) -> None:
    """Draw WORKFLOW's steps from the rule files here, under the step ids its runs use."""
    from dsl import compile_rules
    from dsl.diagnostics import did_you_mean, render_text
    from engine.rules.cli import configured
    from engine.workflows.authoring.graph import dot, mermaid

    default_paths, default_templates = configured()
    compilation = compile_rules(
        list(paths) or default_paths, templates_dir=templates_dir or default_templates
    )
    if compilation.rule_set is None:
        click.echo(render_text(compilation.diagnostics, compilation.sources), err=True)
        sys.exit(1)
    found = compilation.rule_set.workflows.get(workflow)
    if found is None:
        hint = did_you_mean(workflow, compilation.rule_set.workflows)
        raise click.ClickException(
            f"no workflow named {workflow!r}" + (f"; {hint}" if hint else "")
        )
    click.echo((dot if output == "dot" else mermaid)(found), nl=False)


@click.group()
def new() -> None:
    """Make a new rule file from a template."""


def _values(assignments: tuple[str, ...]) -> dict[str, str]:
    values: dict[str, str] = {}
    for assignment in assignments:
        key, equals, value = assignment.partition("=")
        if not equals or not key:
            raise click.BadParameter(f"{assignment!r} is not KEY=VALUE", param_hint="--set")
        if key in values:
            raise click.BadParameter(f"{key} is set twice", param_hint="--set")
        values[key] = value
    return values


@new.command("workflow")
@click.argument("name")
@click.option(
    "--from",
    "template",
    required=True,
    help="The template: " + ", ".join(t.name for t in library.templates()) + ".",
)
@click.option(
    "--set", "assignments", multiple=True, metavar="KEY=VALUE", help="A placeholder's value."
)
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the file goes [default: the first [rules] folder of ownly.toml, else rules].",
)
@_TEMPLATES_DIR
def new_workflow(
    name: str,
    template: str,
    assignments: tuple[str, ...],
    folder: Path | None,
    templates_dir: Path | None,
) -> None:
    """Write workflow NAME from a template to NAME.ownly and check it with the rules here.

    The file is not overwritten; one that does not compile is removed again.
    """
    from dsl import compile_rules, rule_files
    from dsl.diagnostics import render_text
    from engine.rules.cli import configured

    text = library.render(template, name, _values(assignments))
    paths, default_templates = configured()
    folder = folder or next((p for p in paths if p.is_dir()), Path("rules"))
    made_folder = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.ownly"
    try:
        with target.open("x", encoding="utf-8") as file:
            file.write(text)
    except FileExistsError:
        raise click.ClickException(f"{target} exists: it is not overwritten") from None
    files = rule_files(paths)
    if target.resolve() not in {f.resolve() for f in files}:
        files.append(target)
    compilation = compile_rules(files, templates_dir=templates_dir or default_templates)
    if compilation.diagnostics:
        click.echo(render_text(compilation.diagnostics, compilation.sources), err=True)
    if not compilation.ok:
        target.unlink()
        if made_folder:
            folder.rmdir()
        click.echo(f"{target} does not compile with the rules here: removed", err=True)
        sys.exit(1)
    click.echo(f"wrote {target}")
