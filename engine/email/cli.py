"""``ownly emails ...``: preview a template here; send and read the log through the engine's API.

``preview`` renders from the rule and template files on disk, so it needs no
running engine (as ``ownly simulate``); ``send-template`` and ``logs`` talk to
the running engine (``engine.http.client``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from engine.http.client import Api, api_for, console, json_option, short_time, url_option

__all__ = ["emails"]

_SCOPES = "emails:read and emails:write"


def _api(ctx: click.Context, url: str | None) -> Api:
    return api_for(ctx, url, _SCOPES)


def _data(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--data") from None
    if not isinstance(data, dict):
        raise click.BadParameter("the data is a JSON object of variables", param_hint="--data")
    return data


@click.group()
def emails() -> None:
    """Email templates and the emails sent: preview, send, logs."""


@emails.command()
@click.argument("name")
@click.option(
    "--data",
    "data_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A JSON object of the template's variables [default: its sample].",
)
@click.option(
    "--part", type=click.Choice(["all", "html", "text"]), default="all", show_default=True
)
@click.pass_context
def preview(ctx: click.Context, name: str, data_file: Path | None, part: str) -> None:
    """Render template NAME from the rule files here, with its sample or --data."""
    from dsl import compile_rules
    from dsl.diagnostics import render_text
    from dsl.render import Renderer, RenderError
    from engine.capability import settings_of

    settings = settings_of(ctx)
    paths = settings.rule_paths if settings is not None else [Path("rules")]
    templates_dir = settings.templates_dir if settings is not None else Path("templates")
    compilation = compile_rules(paths, templates_dir=templates_dir)
    rules = compilation.rule_set
    if rules is None:
        click.echo(render_text(compilation.diagnostics, compilation.sources), err=True)
        sys.exit(1)
    if name not in rules.templates:
        raise click.ClickException(f"no template named {name!r}")
    renderer = Renderer.compile(rules, templates_dir)
    data = _data(data_file)
    if data is None:
        data = renderer.sample(name) or {}
    missing, extra = renderer.variables(name, data)
    try:
        rendered = renderer.render(name, data)
    except RenderError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    if part == "html":
        click.echo(rendered.html)
        return
    if part == "text":
        click.echo(rendered.text)
        return
    click.echo(f"Subject: {rendered.subject}")
    if rendered.preheader:
        click.echo(f"Preheader: {rendered.preheader}")
    if extra:
        click.echo(f"Not declared (ignored by the checker): {', '.join(extra)}")
    if missing:
        click.echo(f"Missing: {', '.join(missing)}")
    click.echo("\n" + rendered.text)


@emails.command("send-template")
@click.argument("name")
@click.option("--to", "to", required=True, help="The recipient's address.")
@click.option(
    "--data",
    "data_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A JSON object of the template's variables.",
)
@click.option("--idempotency-key", help="Sending again with the same key sends nothing more.")
@url_option
@click.pass_context
def send_template(
    ctx: click.Context,
    name: str,
    to: str,
    data_file: Path | None,
    idempotency_key: str | None,
    url: str | None,
) -> None:
    """Queue an email of template NAME to --to on the running engine."""
    body = {"template": name, "to": to, "data": _data(data_file) or {}}
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    answer = _api(ctx, url).call("POST", "/api/emails/send-template", body, headers=headers)
    click.echo(f"queued {answer['id']} ({answer['status']})")


@emails.command()
@click.option("--template", help="Only emails of this template.")
@click.option("--status", help="queued, sent, delivered, opened, clicked, bounced, failed, ...")
@click.option("--to", "to", help="Only emails to this address.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500))
@click.option("--cursor", help="The next_cursor of a previous page.")
@url_option
@json_option
@click.pass_context
def logs(
    ctx: click.Context,
    template: str | None,
    status: str | None,
    to: str | None,
    limit: int,
    cursor: str | None,
    url: str | None,
    as_json: bool,
) -> None:
    """The email log, newest first."""
    query = {
        "template": template or "",
        "status": status or "",
        "to": to or "",
        "limit": str(limit),
        "cursor": cursor or "",
    }
    body = _api(ctx, url).call("GET", "/api/emails/logs", query=query)
    if as_json:
        click.echo(json.dumps(body, indent=2))
        return
    table = Table("email", "template", "to", "status", "provider", "opens", "clicks", "created")
    for item in body["emails"]:
        table.add_row(
            item["id"],
            escape(item["template"] or "-"),
            escape(item["to"]),
            item["status"],
            escape(item["provider"] or "-"),
            str(item["open_count"]),
            str(item["click_count"]),
            short_time(item["created_at"]),
        )
    out = console()
    out.print(table)
    if body["next_cursor"]:
        out.print(f"more: --cursor {body['next_cursor']}")
