"""``ownly webhooks ...``: operate the running engine's webhooks through its HTTP API
(``engine.http.client``)."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from engine.http.client import Api, api_for, console, json_option, short_time, url_option

__all__ = ["webhooks"]

_SCOPES = "webhooks:read and webhooks:write"


def _webhook_path(name: str, *rest: str) -> str:
    """``/api/webhooks/<name>/<rest>...``, each part quoted as one path segment."""
    parts = (urllib.parse.quote(part, safe="") for part in (name, *rest))
    return "/".join(["/api/webhooks", *parts])


def _api(ctx: click.Context, url: str | None) -> Api:
    return api_for(ctx, url, _SCOPES)


@click.group()
def webhooks() -> None:
    """Operate webhooks on the running engine: list, deliveries, retry, recover."""


@webhooks.command("list")
@url_option
@json_option
@click.pass_context
def list_webhooks(ctx: click.Context, url: str | None, as_json: bool) -> None:
    """Every webhook with its state and delivery statistics."""
    body = _api(ctx, url).call("GET", "/api/webhooks")
    if as_json:
        click.echo(json.dumps(body, indent=2))
        return
    table = Table("webhook", "state", "deliveries", "ok", "failed", "pending", "last success")
    table.add_column("defined at")
    for hook in body["webhooks"]:
        stats = hook["stats"]
        table.add_row(
            escape(hook["id"]),
            hook["state"],
            str(stats["deliveries"]),
            str(stats["successes"]),
            str(stats["failures"]),
            str(stats["pending"]),
            short_time(stats["last_success_at"]),
            escape(f"{hook['file']}:{hook['line']}"),
        )
    console().print(table)


@webhooks.command()
@click.argument("name")
@click.option("--state", help="pending, held, waiting, running, succeeded, failed or cancelled.")
@click.option("--event-type", help="Only deliveries of this event type.")
@click.option("--since", help="Created at or after this RFC 3339 time.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500))
@click.option("--cursor", help="The next_cursor of a previous page.")
@url_option
@json_option
@click.pass_context
def deliveries(
    ctx: click.Context,
    name: str,
    state: str | None,
    event_type: str | None,
    since: str | None,
    limit: int,
    cursor: str | None,
    url: str | None,
    as_json: bool,
) -> None:
    """A webhook's deliveries, newest first."""
    query = {
        "state": state or "",
        "event_type": event_type or "",
        "since": since or "",
        "limit": str(limit),
        "cursor": cursor or "",
    }
    path = _webhook_path(name, "deliveries")
    body = _api(ctx, url).call("GET", path, query=query)
    if as_json:
        click.echo(json.dumps(body, indent=2))
        return
    table = Table("delivery", "event", "type", "state", "attempts", "created", "last error")
    for item in body["deliveries"]:
        table.add_row(
            item["id"],
            escape(item["event_id"] or "-"),
            escape(item["event_type"] or "-"),
            item["state"],
            f"{item['attempts']}/{item['max_attempts']}",
            short_time(item["created_at"]),
            escape((item["last_error"] or "")[:60]),
        )
    out = console()
    out.print(table)
    if body["next_cursor"]:
        out.print(f"more: --cursor {body['next_cursor']}")


def _attempt_line(body: dict[str, Any]) -> str:
    attempt = body["attempt"]
    status = attempt["status"] if attempt["status"] is not None else attempt["error_class"]
    return (
        f"delivery {body['delivery']}: {attempt['outcome']} ({status}) in "
        f"{attempt['duration'] * 1000:.0f} ms; now {body['state']}"
    )


@webhooks.command()
@click.argument("name")
@click.argument("delivery")
@url_option
@click.pass_context
def retry(ctx: click.Context, name: str, delivery: str, url: str | None) -> None:
    """Attempt one delivery again now (same webhook-id)."""
    path = _webhook_path(name, "deliveries", delivery, "retry")
    body = _api(ctx, url).call("POST", path)
    click.echo(_attempt_line(body))


@webhooks.command()
@click.argument("name")
@click.option("--since", required=True, help="RFC 3339 time: failed deliveries created after.")
@click.option("--until", help="RFC 3339 time: ... and before (default: now).")
@url_option
@click.pass_context
def recover(ctx: click.Context, name: str, since: str, until: str | None, url: str | None) -> None:
    """Re-queue a webhook's failed deliveries created in a window."""
    window = {"since": since} | ({"until": until} if until else {})
    path = _webhook_path(name, "recover")
    body = _api(ctx, url).call("POST", path, window)
    click.echo(f"re-queued {body['recovered']} failed deliveries of {name}")


@webhooks.command()
@click.argument("name")
@url_option
@click.pass_context
def test(ctx: click.Context, name: str, url: str | None) -> None:
    """Send a webhook.test event to the webhook now."""
    body = _api(ctx, url).call("POST", _webhook_path(name, "test"))
    click.echo(_attempt_line(body))


@webhooks.command()
@click.argument("name")
@url_option
@click.pass_context
def pause(ctx: click.Context, name: str, url: str | None) -> None:
    """Hold the webhook's deliveries until it is activated."""
    body = _api(ctx, url).call("POST", _webhook_path(name, "pause"))
    click.echo(f"{name}: {body['state']}")


@webhooks.command()
@click.argument("name")
@url_option
@click.pass_context
def activate(ctx: click.Context, name: str, url: str | None) -> None:
    """Release the webhook's held deliveries."""
    body = _api(ctx, url).call("POST", _webhook_path(name, "activate"))
    click.echo(f"{name}: {body['state']}")
