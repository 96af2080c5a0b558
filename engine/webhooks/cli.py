"""``ownly webhooks ...``: operate the running engine's webhooks through its HTTP API.

The engine's address comes from ``--url`` (or ``OWNLY_URL``), else from the
``[server]`` table of ``ownly.toml``; the API key from ``OWNLY_API_KEY``, else,
in development mode, from the key the engine keeps in ``var/dev-key``.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from engine.capability import settings_of
from engine.config import CLIENT_KEY_ENV
from engine.errors import OwnlyError
from engine.http.auth import DEV_KEY_FILE

__all__ = ["ApiError", "webhooks"]


class ApiError(OwnlyError):
    """The engine's API refused the request or could not be reached."""


class Api:
    """A small JSON client for the engine's API (standard library only)."""

    def __init__(self, base_url: str, key: str, timeout: float = 30.0) -> None:
        scheme = urllib.parse.urlsplit(base_url).scheme
        if scheme not in ("http", "https"):
            raise ApiError(f"the engine URL must be http:// or https://, not {base_url!r}")
        self._base = base_url.rstrip("/")
        self._key = key
        self._timeout = timeout

    def call(
        self, method: str, path: str, body: object = None, query: dict[str, str] | None = None
    ) -> Any:
        url = self._base + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v})
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - scheme checked
        request.add_header("Authorization", f"Bearer {self._key}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as answer:  # noqa: S310
                return json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise ApiError(_problem(exc)) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiError(f"cannot reach the engine at {self._base}: {reason}") from None


def _problem(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read())
        return f"{exc.code} {body.get('error', '')}: {body.get('message', '')}".strip()
    except (ValueError, AttributeError):
        return f"{exc.code} {exc.reason}"


def _webhook_path(name: str, *rest: str) -> str:
    """``/api/webhooks/<name>/<rest>...``, each part quoted as one path segment."""
    parts = (urllib.parse.quote(part, safe="") for part in (name, *rest))
    return "/".join(["/api/webhooks", *parts])


def _api(ctx: click.Context, url: str | None) -> Api:
    key = os.environ.get(CLIENT_KEY_ENV, "")
    if url is None or not key:  # only then is ownly.toml needed
        settings = settings_of(ctx)
        if settings is None:
            raise ApiError("name the engine with --url or OWNLY_URL")
        if url is None:
            server = settings.config.server
            host = "127.0.0.1" if server.host in ("0.0.0.0", "::", "") else server.host
            url = f"http://{host}:{server.port}"
        dev_key = settings.state_dir / DEV_KEY_FILE
        if not key and not settings.production and dev_key.exists():
            key = dev_key.read_text(encoding="ascii").strip()
    if not key:
        raise ApiError(
            f"set {CLIENT_KEY_ENV} to a key with the webhooks:read and webhooks:write scopes"
        )
    return Api(url, key)


def _console() -> Console:
    # Piped output is read by people and scripts alike: do not cut columns to 80.
    width = None if sys.stdout.isatty() else 200
    return Console(highlight=False, width=width)


def _time(value: object) -> str:
    return str(value)[:19].replace("T", " ") if value else "-"


_url_option = click.option(
    "--url", envvar="OWNLY_URL", help="The engine's base URL (default: from ownly.toml)."
)
_json_option = click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")


@click.group()
def webhooks() -> None:
    """Operate webhooks on the running engine: list, deliveries, retry, recover."""


@webhooks.command("list")
@_url_option
@_json_option
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
            _time(stats["last_success_at"]),
            escape(f"{hook['file']}:{hook['line']}"),
        )
    _console().print(table)


@webhooks.command()
@click.argument("name")
@click.option("--state", help="pending, held, waiting, running, succeeded, failed or cancelled.")
@click.option("--event-type", help="Only deliveries of this event type.")
@click.option("--since", help="Created at or after this RFC 3339 time.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500))
@click.option("--cursor", help="The next_cursor of a previous page.")
@_url_option
@_json_option
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
            _time(item["created_at"]),
            escape((item["last_error"] or "")[:60]),
        )
    console = _console()
    console.print(table)
    if body["next_cursor"]:
        console.print(f"more: --cursor {body['next_cursor']}")


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
@_url_option
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
@_url_option
@click.pass_context
def recover(ctx: click.Context, name: str, since: str, until: str | None, url: str | None) -> None:
    """Re-queue a webhook's failed deliveries created in a window."""
    window = {"since": since} | ({"until": until} if until else {})
    path = _webhook_path(name, "recover")
    body = _api(ctx, url).call("POST", path, window)
    click.echo(f"re-queued {body['recovered']} failed deliveries of {name}")


@webhooks.command()
@click.argument("name")
@_url_option
@click.pass_context
def test(ctx: click.Context, name: str, url: str | None) -> None:
    """Send a webhook.test event to the webhook now."""
    body = _api(ctx, url).call("POST", _webhook_path(name, "test"))
    click.echo(_attempt_line(body))


@webhooks.command()
@click.argument("name")
@_url_option
@click.pass_context
def pause(ctx: click.Context, name: str, url: str | None) -> None:
    """Hold the webhook's deliveries until it is activated."""
    body = _api(ctx, url).call("POST", _webhook_path(name, "pause"))
    click.echo(f"{name}: {body['state']}")


@webhooks.command()
@click.argument("name")
@_url_option
@click.pass_context
def activate(ctx: click.Context, name: str, url: str | None) -> None:
    """Release the webhook's held deliveries."""
    body = _api(ctx, url).call("POST", _webhook_path(name, "activate"))
    click.echo(f"{name}: {body['state']}")
