"""A client of the engine's HTTP API for the command line (standard library only).

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

from engine.capability import settings_of
from engine.config import CLIENT_KEY_ENV
from engine.errors import OwnlyError
from engine.http.auth import DEV_KEY_FILE

__all__ = ["Api", "ApiError", "api_for", "console", "json_option", "short_time", "url_option"]


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
        self,
        method: str,
        path: str,
        body: object = None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        url = self._base + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v})
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - scheme checked
        request.add_header("Authorization", f"Bearer {self._key}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
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


def api_for(ctx: click.Context, url: str | None, scopes: str) -> Api:
    """The API of the engine ``url`` names (or ``ownly.toml``), with the key to use;
    ``scopes`` says in an error which scopes that key needs."""
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
        raise ApiError(f"set {CLIENT_KEY_ENV} to a key with the {scopes} scopes")
    return Api(url, key)


def console() -> Console:
    # Piped output is read by people and scripts alike: do not cut columns to 80.
    width = None if sys.stdout.isatty() else 200
    return Console(highlight=False, width=width)


def short_time(value: object) -> str:
    return str(value)[:19].replace("T", " ") if value else "-"


url_option = click.option(
    "--url", envvar="OWNLY_URL", help="The engine's base URL (default: from ownly.toml)."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
