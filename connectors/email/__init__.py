"""Email: the outgoing message, the providers that take it, and the events they send back.

``OutgoingEmail`` is one checked email to one recipient; ``mime()`` and
``as_bytes()`` give it in MIME. Each provider (``SmtpProvider``,
``SendGridProvider``, ``MailgunProvider``, ``OutboxProvider``) makes one
attempt per ``send`` and returns ``Sent`` or raises ``SendError``, whose
``permanent`` says whether any other attempt could help.
``signatures`` verifies SendGrid's and Mailgun's event webhooks and ``events``
reads their reports as ``ProviderEvent`` values.

The errors, both under ``connectors.errors.ConnectorError``::

    InvalidEmail    an address, a header or the body is not valid; ``field`` names it
    SendError       a provider did not take the message; ``permanent``, ``reason``
    SignatureError  a provider's event webhook did not verify; ``reason``
"""

from __future__ import annotations

from connectors.email.base import DETAIL_LIMIT, EmailProvider, SendError, Sent, redact
from connectors.email.events import (
    MAX_SENDGRID_EVENTS,
    MailgunSignature,
    ProviderEvent,
    parse_mailgun,
    parse_sendgrid,
)
from connectors.email.mailgun import MailgunProvider
from connectors.email.message import (
    EMAIL_ID_HEADER,
    InvalidEmail,
    OutgoingEmail,
    check_header,
    make_message_id,
    parse_address,
)
from connectors.email.outbox import OutboxProvider
from connectors.email.sendgrid import SendGridProvider
from connectors.email.signatures import (
    SENDGRID_SIGNATURE_HEADER,
    SENDGRID_TIMESTAMP_HEADER,
    SignatureError,
    load_sendgrid_key,
    verify_mailgun,
    verify_sendgrid,
)
from connectors.email.smtp import Security, SmtpProvider

__all__ = [
    "DETAIL_LIMIT",
    "EMAIL_ID_HEADER",
    "MAX_SENDGRID_EVENTS",
    "SENDGRID_SIGNATURE_HEADER",
    "SENDGRID_TIMESTAMP_HEADER",
    "EmailProvider",
    "InvalidEmail",
    "MailgunProvider",
    "MailgunSignature",
    "OutboxProvider",
    "OutgoingEmail",
    "ProviderEvent",
    "Security",
    "SendError",
    "SendGridProvider",
    "Sent",
    "SignatureError",
    "SmtpProvider",
    "check_header",
    "load_sendgrid_key",
    "make_message_id",
    "parse_address",
    "parse_mailgun",
    "parse_sendgrid",
    "redact",
    "verify_mailgun",
    "verify_sendgrid",
]
