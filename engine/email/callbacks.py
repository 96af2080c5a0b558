"""The providers' event webhooks: SendGrid's and Mailgun's reports, verified and recorded.

``POST /api/emails/sendgrid/webhook`` takes SendGrid's Signed Event Webhook
(ECDSA P-256 over the timestamp and the raw body) and ``POST
/api/emails/mailgun/webhook`` Mailgun's (an HMAC of its timestamp and token,
a token seen before refused). The signature is the caller's credential: no
API key is asked for. A request that does not verify is refused with 401 and
writes nothing; a report already recorded (by ``sg_event_id``, Mailgun's event
id) is counted as a duplicate and changes nothing. Each report becomes a
``Change`` of ``engine.email.feedback``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web

from connectors.email.events import ProviderEvent, parse_mailgun, parse_sendgrid
from connectors.email.signatures import SignatureError, verify_mailgun, verify_sendgrid
from engine.email.feedback import Change
from engine.email.runtime import EMAIL, Email
from engine.http.common import error, json

__all__ = ["add_routes"]


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/emails/sendgrid/webhook", sendgrid_webhook)
    app.router.add_post("/api/emails/mailgun/webhook", mailgun_webhook)


def _key(email: Email, name: str | None, what: str) -> str:
    value = email.services.environ.get(name) if name else None
    if not value:
        raise error(404, "not_configured", f"the {what} event webhook is not configured in [email]")
    return value


def _refused(exc: SignatureError) -> web.HTTPException:
    return error(401, "invalid_signature", str(exc), reason=exc.reason)


def _changes(events: Sequence[ProviderEvent]) -> list[Change]:
    return [
        Change(
            email_id=event.email_id,
            type=event.status,
            source=event.provider,
            occurred_at=event.occurred_at,
            receipt=event.event_id,
            url=event.url,
            bounce_type=event.bounce_type,
            reason=event.reason,
            detail=event.detail,
        )
        for event in events
        if event.email_id is not None
    ]


async def _record(email: Email, changes: list[Change], once: tuple[str, str] | None) -> Any:
    recorded = await email.record(changes, once)
    if recorded is None:
        return None
    return {"recorded": sum(recorded), "ignored": len(recorded) - sum(recorded)}


async def _body(request: web.Request) -> bytes:
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise error(413, "body_too_large", "the body is over the engine's limit") from None


async def sendgrid_webhook(request: web.Request) -> web.Response:
    """SendGrid's batch of event reports."""
    email = request.app[EMAIL]
    config = email.config
    key = email.sendgrid_key
    if key is None:
        raise error(
            404, "not_configured", "the SendGrid event webhook is not configured in [email]"
        )
    body = await _body(request)
    try:
        verify_sendgrid(
            key,
            request.headers.get("X-Twilio-Email-Event-Webhook-Signature"),
            request.headers.get("X-Twilio-Email-Event-Webhook-Timestamp"),
            body,
            now=email.services.clock.now().timestamp(),
            tolerance=config.webhook_tolerance,
        )
    except SignatureError as exc:
        raise _refused(exc) from None
    try:
        events = parse_sendgrid(body)
    except ValueError as exc:
        raise error(400, "invalid_body", str(exc)) from None
    summary = await _record(email, _changes(events), None)
    return json({**summary, "skipped": len(events) - len(_changes(events))})


async def mailgun_webhook(request: web.Request) -> web.Response:
    """One of Mailgun's event reports."""
    email = request.app[EMAIL]
    config = email.config
    key = _key(email, config.mailgun_signing_key_env, "Mailgun")
    body = await _body(request)
    try:
        signature, event = parse_mailgun(body)
    except ValueError as exc:
        raise error(400, "invalid_body", str(exc)) from None
    try:
        verify_mailgun(
            key,
            signature.timestamp,
            signature.token,
            signature.signature,
            now=email.services.clock.now().timestamp(),
            tolerance=config.webhook_tolerance,
        )
    except SignatureError as exc:
        raise _refused(exc) from None
    changes = _changes([event] if event is not None else [])
    summary = await _record(email, changes, ("mailgun-token", signature.token))
    if summary is None:
        raise error(401, "invalid_signature", "this token was seen before", reason="replayed")
    return json(summary)
