"""``POST /api/hooks/{name}``: a request to an inbound hook, verified and stored as an event.

A ``hook`` block of the rule files names a secret (or several, while one is
rotated), the header that carries the signature and the algorithm. The
signature is the caller's credential: no API key is asked for. The header
holds the HMAC of the raw body under one of the secrets, in hex (either
case) or base64, with or without a ``sha256=`` (``sha512=``) prefix, as
GitHub writes it; it is compared in constant time. A request that does not
verify is refused with 401 and writes nothing.

A verified JSON object becomes the event ``hook.<name>`` (source
``hook:<name>``), stored and matched through the bus like any other: a
workflow's ``on hook <name>`` is a subscription of that type. Its id comes
from the request's ``Idempotency-Key`` or ``webhook-id`` header when it has
one, so a provider's retry of one notification is one event.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence

from aiohttp import web

from dsl import ir
from engine.events.bus import AppendEvents, StoredEvent
from engine.events.ids import new_event_id
from engine.http.common import engine_of, error, json, read_json, rules_of

__all__ = ["Refusal", "add_routes", "event_id", "secrets_of", "verify"]

_DIGESTS = {"hmac-sha256": hashlib.sha256, "hmac-sha512": hashlib.sha512}
_ID_HEADERS = ("Idempotency-Key", "webhook-id")
_KEY = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces: as ingest takes an id
_MAX_ID = 200
_HEX = re.compile(r"[0-9A-Fa-f]+")
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/hooks/{name}", post_hook)


class Refusal(Exception):
    """The request's signature does not verify; ``reason`` says why, in a word."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def secrets_of(hook: ir.Hook, environ: Mapping[str, str]) -> list[bytes]:
    """The hook's secrets as set now; one that is empty (``env("X", "")``) is no secret."""
    found = []
    for value in hook.secrets:
        if isinstance(value, ir.EnvRef):
            text = environ.get(value.env, value.default or "")
        else:
            text = value
        if text:
            found.append(text.encode("utf-8", "surrogatepass"))
    return found


def verify(hook: ir.Hook, secrets: Sequence[bytes], body: bytes, offered: str | None) -> None:
    """Check ``offered`` (the signature header's value) against the HMAC of ``body``.

    Raises:
        Refusal: no signature, one that is not a digest of the hook's algorithm,
            or one that no secret gives.
    """
    if not secrets:
        raise Refusal("no_secret", f"the hook '{hook.name}' has no secret set")
    if offered is None or not offered.strip():
        raise Refusal("missing", f"the signature header {hook.header} is missing")
    digest = _decode(offered.strip(), hook.algorithm)
    if digest is None:
        raise Refusal(
            "malformed", f"{hook.header} is not a {hook.algorithm} digest in hex or base64"
        )
    matched = False
    # Every secret is tried, so that timing does not tell which one matched.
    for secret in secrets:
        expected = hmac.new(secret, body, _DIGESTS[hook.algorithm]).digest()
        matched |= hmac.compare_digest(digest, expected)
    if not matched:
        raise Refusal("mismatch", f"{hook.header} does not match the body")


def _decode(text: str, algorithm: str) -> bytes | None:
    """The digest ``text`` writes (hex or base64, an optional ``sha256=`` prefix), or None."""
    prefix = algorithm.removeprefix("hmac-") + "="
    if text[: len(prefix)].lower() == prefix:
        text = text[len(prefix) :]
    size = _DIGESTS[algorithm]().digest_size
    if len(text) == 2 * size and _HEX.fullmatch(text):
        return bytes.fromhex(text)
    if not _BASE64.fullmatch(text):
        return None
    try:
        decoded = base64.b64decode(
            text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4), validate=True
        )
    except (binascii.Error, ValueError):
        return None
    return decoded if len(decoded) == size else None


def event_id(name: str, headers: Mapping[str, str]) -> str | None:
    """The event's id from the request's ``Idempotency-Key`` or ``webhook-id``; None
    without one.

    Raises:
        aiohttp.web.HTTPException: 400 ``invalid_idempotency_key``, a key that
            makes no event id.
    """
    for header in _ID_HEADERS:
        key = headers.get(header)
        if key is None:
            continue
        value = f"hook_{name}_{key}"
        if not _KEY.fullmatch(key) or len(value) > _MAX_ID:
            raise error(
                400,
                "invalid_idempotency_key",
                f"{header} must be printable ASCII without spaces, and the id it makes "
                f"(hook_{name}_ and the key) at most {_MAX_ID} characters",
            )
        return value
    return None


async def post_hook(request: web.Request) -> web.Response:
    """A request to the hook ``name``: verified, then stored as the event ``hook.<name>``."""
    engine = engine_of(request)
    rules = rules_of(request)
    name = request.match_info["name"]
    hook = rules.hooks.get(name)
    if hook is None:
        raise error(404, "unknown_hook", f"no hook is named '{name}' in the rule files")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit = engine.settings.config.ingest.max_body
        raise error(413, "body_too_large", f"the body is over the limit of {limit} bytes") from None
    try:
        verify(hook, secrets_of(hook, engine.environ), body, request.headers.get(hook.header))
    except Refusal as exc:
        engine.logger.warning("hooks.refused", hook=name, reason=exc.reason)
        raise error(401, "invalid_signature", str(exc), reason=exc.reason) from None
    data = await read_json(request)  # the body already read
    if not isinstance(data, dict):
        raise error(422, "invalid_body", "the body must be a JSON object")
    given = event_id(name, request.headers)
    now = engine.clock.now()
    event = StoredEvent(
        id=given or new_event_id(),
        assigned_id=given is None,
        type=f"hook.{name}",
        data=data,
        occurred_at=now,
        received_at=now,
        source=f"hook:{name}",
    )
    # Planned under the rule set that defines the hook, not one a reload may
    # have made current since.
    (result,) = await engine.writer.submit(AppendEvents(engine.bus, [event], rules))
    if not result.duplicate:
        engine.metrics.events_ingested.inc()
    return json({"id": result.id, "type": event.type, "duplicate": result.duplicate}, status=202)
