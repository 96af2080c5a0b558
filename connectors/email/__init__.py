"""Email out: the outgoing message, and the providers that take it, behind one interface.

``OutgoingEmail`` is one checked email to one recipient; ``mime()`` and
``as_bytes()`` give it in MIME. Each provider (``SmtpProvider``,
``SendGridProvider``, ``MailgunProvider``, ``OutboxProvider``) makes one
attempt per ``send`` and returns ``Sent`` or raises ``SendError``, whose
``permanent`` says whether any other attempt could help.

The errors, both under ``connectors.errors.ConnectorError``::

    InvalidEmail    an address, a header or the body is not valid; ``field`` names it
    SendError       a provider did not take the message; ``permanent``, ``reason``
"""

from __future__ import annotations

from connectors.email.base import DETAIL_LIMIT, EmailProvider, SendError, Sent, redact
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
from connectors.email.smtp import Security, SmtpProvider

__all__ = [
    "DETAIL_LIMIT",
    "EMAIL_ID_HEADER",
    "EmailProvider",
    "InvalidEmail",
    "MailgunProvider",
    "OutboxProvider",
    "OutgoingEmail",
    "Security",
    "SendError",
    "SendGridProvider",
    "Sent",
    "SmtpProvider",
    "check_header",
    "make_message_id",
    "parse_address",
    "redact",
]
