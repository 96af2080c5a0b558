"""What every API handler shares: JSON answers, errors, scopes and cursors."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web

from dsl import RuleSet
from engine.config import ApiKey
from engine.events.ids import parse_rfc3339
from engine.events.ingest import MAX_DEPTH, nests_deeper
from engine.runtime import ENGINE, Engine

__all__ = [
    "decode_cursor",
    "defined_in_rules",
    "encode_cursor",
    "engine_of",
    "error",
    "json",
    "parse_limit",
    "parse_rfc3339_field",
    "parse_time",
    "read_json",
    "require",
    "rules_of",
]


def _default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialize {type(value).__name__}")


def json(body: object, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(body, default=_default),
        status=status,
        content_type="application/json",
    )


def error(status: int, code: str, message: str, **details: Any) -> web.HTTPException:
    """An HTTP error with a JSON body ``{"error": code, "message": ..., ...}``, to raise."""
    exc = web.HTTPException()
    exc.set_status(status)
    exc.body = orjson.dumps({"error": code, "message": message, **details}, default=_default)
    exc.content_type = "application/json"
    return exc


def defined_in_rules(file: str, line: int | None, message: str) -> web.HTTPException:
    """405 ``defined_in_rules``: what the rule files define is not changed through the API."""
    exc = error(405, "defined_in_rules", message, file=file, line=line)
    exc.headers["Allow"] = "GET"
    return exc


async def read_json(request: web.Request) -> Any:
    """The request's JSON body: 413 over the engine's limit, 415 when it is not sent as
    ``application/json``, 400 when it does not parse."""
    if request.content_type != "application/json":
        raise error(415, "unsupported_media_type", "send the body as application/json")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit = engine_of(request).settings.config.ingest.max_body
        raise error(413, "body_too_large", f"the body is over the limit of {limit} bytes") from None
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise error(400, "invalid_json", "the body is not JSON") from None
    if nests_deeper(value, MAX_DEPTH):
        raise error(400, "invalid_json", f"the body must not nest deeper than {MAX_DEPTH} levels")
    return value


def engine_of(request: web.Request) -> Engine:
    return request.app[ENGINE]


def rules_of(request: web.Request) -> RuleSet:
    """The rule set current now, or 503 before one is loaded."""
    rules = engine_of(request).rules.rule_set()
    if rules is None:
        raise error(503, "not_ready", "no rule set is loaded yet")
    return rules


def require(request: web.Request, scope: str) -> ApiKey:
    """The request's API key, which must allow ``scope``: else 401 or 403."""
    key = engine_of(request).keyring.identify(request.headers.get("Authorization"))
    if key is None:
        raise error(401, "unauthorized", "send an API key: Authorization: Bearer <key>")
    if not key.allows(scope):
        raise error(403, "forbidden", f"the key '{key.name}' does not have the scope '{scope}'")
    return key


def encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(str(position).encode()).decode().rstrip("=")


def decode_cursor(text: str) -> int:
    try:
        padded = text + "=" * (-len(text) % 4)
        position = int(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, binascii.Error, UnicodeDecodeError):
        position = -1
    if not 0 <= position < 2**63:  # a position the database can hold
        raise error(400, "invalid_cursor", "the cursor is not one this API gave out")
    return position


def parse_limit(request: web.Request, default: int = 50, maximum: int = 500) -> int:
    text = request.query.get("limit")
    if text is None:
        return default
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= maximum:
        raise error(400, "invalid_limit", f"limit must be a whole number from 1 to {maximum}")
    return int(text)


def parse_time(request: web.Request, name: str) -> datetime | None:
    """The query parameter ``name`` as an RFC 3339 time, None when absent; else 400."""
    text = request.query.get(name)
    if text is None:
        return None
    # A "+" in a query arrives as a space.
    return parse_rfc3339_field(text.replace(" ", "+"), name, code="invalid_time")


def parse_rfc3339_field(value: object, name: str, *, code: str) -> datetime:
    """``value`` (from a query or a body) as an RFC 3339 time in UTC; else 400 ``code``."""
    parsed = parse_rfc3339(value) if isinstance(value, str) else None
    if parsed is None:
        raise error(400, code, f"{name} must be an RFC 3339 time with a time zone")
    return parsed
