"""Provider events: read what SendGrid and Mailgun report about sent mail.

SendGrid's body is a JSON array of up to 10,000 event objects; Mailgun's one
JSON object, ``{"signature": {...}, "event-data": {...}}``. Their signatures
are checked by ``connectors.email.signatures`` first. The two vocabularies
map onto one ``ProviderEvent.status``::

    status        SendGrid                           Mailgun
    delivered     delivered                          delivered
    opened        open                               opened
    clicked       click                              clicked
    bounced hard  bounce                             failed, severity permanent
    bounced soft  bounce of type "blocked"           -
    deferred      deferred                           failed, severity temporary
    dropped       dropped                            rejected; failed, reason suppress-*
    complained    spamreport                         complained
    unsubscribed  unsubscribe, group_unsubscribe     unsubscribed
    (skipped)     processed, any other event         accepted, stored, any other

Mailgun retries a temporary failure itself and reports a permanent one when it
gives up, so a temporary failure is a deferral, not a bounce; a ``suppress-*``
failure was never attempted (the address is on a suppression list), as
SendGrid's ``dropped``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import orjson

__all__ = [
    "MAX_SENDGRID_EVENTS",
    "BounceType",
    "DetailValue",
    "EventStatus",
    "MailgunSignature",
    "ProviderEvent",
    "parse_mailgun",
    "parse_sendgrid",
]

MAX_SENDGRID_EVENTS = 10_000

EventStatus = Literal[
    "delivered", "opened", "clicked", "bounced", "complained", "unsubscribed", "dropped", "deferred"
]
BounceType = Literal["hard", "soft"]
DetailValue = str | int | float | bool | list[str]

_MAX_ID_CHARS = 255
_MAX_TEXT_BYTES = 1024
_MAX_LIST_ITEMS = 20


@dataclass(frozen=True)
class ProviderEvent:
    """One thing a provider reports about one sent message, in Ownly's words.

    Attributes:
        provider: ``sendgrid`` or ``mailgun``.
        event_id: the provider's id of the event (SendGrid ``sg_event_id``,
            Mailgun ``event-data.id``): the same when the provider sends it again.
        email_id: Ownly's id of the email (the ``ownly_email_id`` custom argument
            or user variable), or None when the message did not carry one.
        status: what happened, one of ``EventStatus``.
        occurred_at: when it happened, in UTC.
        recipient: the address the event is about.
        url: the link clicked, for ``clicked``.
        bounce_type: ``hard`` or ``soft`` for ``bounced``; None when the
            provider did not say.
        reason: the receiving server's answer or the provider's reason.
        detail: the provider's other fields worth keeping: at most 20, each
            string at most 1 KiB.
    """

    provider: Literal["sendgrid", "mailgun"]
    event_id: str
    email_id: str | None
    status: EventStatus
    occurred_at: datetime
    recipient: str | None = None
    url: str | None = None
    bounce_type: BounceType | None = None
    reason: str | None = None
    detail: dict[str, DetailValue] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class MailgunSignature:
    """The ``signature`` block of a Mailgun webhook body, for ``verify_mailgun``."""

    timestamp: str
    token: str
    signature: str


def parse_sendgrid(body: bytes) -> list[ProviderEvent]:
    """Read a SendGrid event body; events Ownly does not track are left out.

    Raises:
        ValueError: the body is not a JSON array of objects, holds more than
            10,000 of them, or an event lacks ``sg_event_id``, ``event`` or a
            numeric ``timestamp``.
    """
    data = _load_json(body, "SendGrid")
    if not isinstance(data, list):
        raise ValueError(
            f"a SendGrid event body must be a JSON array of event objects, not {_kind(data)}"
        )
    if len(data) > MAX_SENDGRID_EVENTS:
        raise ValueError(
            f"a SendGrid event body holds {len(data)} events, more than {MAX_SENDGRID_EVENTS}"
        )
    events = []
    for index, item in enumerate(data):
        event = _sendgrid_event(item, f"SendGrid event {index}")
        if event is not None:
            events.append(event)
    return events


def parse_mailgun(body: bytes) -> tuple[MailgunSignature, ProviderEvent | None]:
    """Read a Mailgun webhook body: its signature block, and its event unless skipped.

    Raises:
        ValueError: the body is not a JSON object, its ``signature`` block lacks
            a string ``timestamp``, ``token`` or ``signature``, or its
            ``event-data`` lacks ``id``, ``event`` or a numeric ``timestamp``.
    """
    data = _load_json(body, "Mailgun")
    if not isinstance(data, dict):
        raise ValueError(f"a Mailgun webhook body must be a JSON object, not {_kind(data)}")
    block = data.get("signature")
    if not isinstance(block, dict):
        raise ValueError("a Mailgun webhook body must hold a 'signature' object")
    where = "the Mailgun 'signature'"
    signature = MailgunSignature(
        timestamp=_required_text(block, "timestamp", where),
        token=_required_text(block, "token", where),
        signature=_required_text(block, "signature", where),
    )
    event_data = data.get("event-data")
    if not isinstance(event_data, dict):
        raise ValueError("a Mailgun webhook body must hold an 'event-data' object")
    return signature, _mailgun_event(event_data)


_SENDGRID_STATUS: dict[str, EventStatus] = {
    "delivered": "delivered",
    "open": "opened",
    "click": "clicked",
    "bounce": "bounced",
    "deferred": "deferred",
    "dropped": "dropped",
    "spamreport": "complained",
    "unsubscribe": "unsubscribed",
    "group_unsubscribe": "unsubscribed",
}
_SENDGRID_DETAIL = [
    ("sg_message_id",),
    ("smtp-id",),
    ("type",),
    ("status",),
    ("bounce_classification",),
    ("attempt",),
    ("tls",),
    ("cert_err",),
    ("ip",),
    ("useragent",),
    ("sg_machine_open",),
    ("category",),
    ("asm_group_id",),
    ("sg_template_id",),
    ("marketing_campaign_id",),
    ("marketing_campaign_name",),
]


def _sendgrid_event(item: object, where: str) -> ProviderEvent | None:
    if not isinstance(item, dict):
        raise ValueError(f"{where} is {_kind(item)}, not an object")
    event_id = _required_text(item, "sg_event_id", where)
    name = _required_text(item, "event", where)
    occurred_at = _instant(item, where)
    status = _SENDGRID_STATUS.get(name)
    if status is None:
        return None
    bounce_type: BounceType | None = None
    if status == "bounced":
        bounce_type = "soft" if item.get("type") == "blocked" else "hard"
    return ProviderEvent(
        provider="sendgrid",
        event_id=event_id,
        email_id=_optional_id(item.get("ownly_email_id")),
        status=status,
        occurred_at=occurred_at,
        recipient=_text(item.get("email")),
        url=_text(item.get("url"), limit=None) if status == "clicked" else None,
        bounce_type=bounce_type,
        reason=_text(item.get("reason")) or _text(item.get("response")),
        detail=_detail(item, _SENDGRID_DETAIL),
    )


_MAILGUN_STATUS: dict[str, EventStatus] = {
    "delivered": "delivered",
    "opened": "opened",
    "clicked": "clicked",
    "complained": "complained",
    "unsubscribed": "unsubscribed",
    "rejected": "dropped",
}
_MAILGUN_SUPPRESSED = frozenset({"suppress-bounce", "suppress-unsubscribe", "suppress-complaint"})
_MAILGUN_DETAIL = [
    ("message", "headers", "message-id"),
    ("reason",),
    ("severity",),
    ("log-level",),
    ("delivery-status", "code"),
    ("delivery-status", "enhanced-code"),
    ("delivery-status", "description"),
    ("delivery-status", "attempt-no"),
    ("delivery-status", "retry-seconds"),
    ("delivery-status", "mx-host"),
    ("reject", "reason"),
    ("tags",),
    ("ip",),
    ("client-info", "client-type"),
    ("client-info", "device-type"),
    ("client-info", "user-agent"),
    ("geolocation", "country"),
    ("domain", "name"),
    ("envelope", "sending-ip"),
]


def _mailgun_event(data: dict[str, object]) -> ProviderEvent | None:
    where = "the Mailgun 'event-data'"
    event_id = _required_text(data, "id", where)
    name = _required_text(data, "event", where)
    occurred_at = _instant(data, where)
    bounce_type: BounceType | None = None
    status = _MAILGUN_STATUS.get(name)
    if name == "failed":
        severity = data.get("severity")
        if data.get("reason") in _MAILGUN_SUPPRESSED:
            status = "dropped"
        elif severity == "temporary":
            status = "deferred"
        else:
            status = "bounced"
            bounce_type = "hard" if severity == "permanent" else None
    if status is None:
        return None
    delivery = data.get("delivery-status")
    delivery = delivery if isinstance(delivery, dict) else {}
    variables = data.get("user-variables")
    return ProviderEvent(
        provider="mailgun",
        event_id=event_id,
        email_id=(
            _optional_id(variables.get("ownly_email_id")) if isinstance(variables, dict) else None
        ),
        status=status,
        occurred_at=occurred_at,
        recipient=_text(data.get("recipient")),
        url=_text(data.get("url"), limit=None) if status == "clicked" else None,
        bounce_type=bounce_type,
        reason=(
            _text(delivery.get("message"))
            or _text(delivery.get("description"))
            or _text(_dig(data, ("reject", "reason")))
            or _text(data.get("reason"))
        ),
        detail=_detail(data, _MAILGUN_DETAIL),
    )


def _load_json(body: bytes, provider: str) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"a {provider} webhook body is not JSON: {exc}") from None


def _required_text(obj: Mapping[str, object], key: str, where: str) -> str:
    value = obj.get(key)
    if value is None:
        raise ValueError(f"{where} has no '{key}'")
    if not isinstance(value, str):
        raise ValueError(f"{where} '{key}' must be a string, not {_kind(value)}")
    if not value:
        raise ValueError(f"{where} '{key}' is empty")
    if len(value) > _MAX_ID_CHARS:
        raise ValueError(f"{where} '{key}' is longer than {_MAX_ID_CHARS} characters")
    return value


def _optional_id(value: object) -> str | None:
    if isinstance(value, str) and 0 < len(value) <= _MAX_ID_CHARS:
        return value
    return None


def _instant(obj: Mapping[str, object], where: str) -> datetime:
    value = obj.get("timestamp")
    if value is None:
        raise ValueError(f"{where} has no 'timestamp'")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where} 'timestamp' must be unix seconds, not {_kind(value)}")
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"{where} 'timestamp' {value} is out of range") from None


def _text(value: object, limit: int | None = _MAX_TEXT_BYTES) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return value if limit is None else _cap(value, limit)


def _cap(text: str, limit: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    return encoded[:limit].decode("utf-8", "ignore")


def _dig(obj: Mapping[str, object], path: Sequence[str]) -> object:
    value: object = obj
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _detail(obj: Mapping[str, object], paths: Sequence[tuple[str, ...]]) -> dict[str, DetailValue]:
    detail: dict[str, DetailValue] = {}
    for path in paths:  # each list names at most 20
        value = _dig(obj, path)
        kept: DetailValue
        if isinstance(value, bool | int | float):
            kept = value
        elif isinstance(value, str):
            kept = _cap(value, _MAX_TEXT_BYTES)
        elif isinstance(value, list):
            kept = [_cap(v, _MAX_TEXT_BYTES) for v in value[:_MAX_LIST_ITEMS] if isinstance(v, str)]
        else:
            continue
        detail[".".join(path)] = kept
    return detail


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
