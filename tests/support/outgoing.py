"""An outgoing email for the providers' tests, and a check that an error shows no secret."""

from __future__ import annotations

import email
import email.policy
import json
from datetime import UTC, datetime
from typing import Any

from connectors.email import OutgoingEmail, SendError

UNSUBSCRIBE = "<https://ownly.com/u/eml_01JD3Z6K8Q>, <mailto:unsubscribe@ownly.com>"


def make_email(number: int = 1, **changes: Any) -> OutgoingEmail:
    email_id = f"eml_01JD3Z6K8Q{number:04d}"
    fields: dict[str, Any] = {
        "email_id": email_id,
        "message_id": f"<{email_id}@mail.ownly.com>",
        "sender": "Zoë at OWNLY <hello@ownly.com>",
        "to": "Jane Investor <jane@investor.example>",
        "subject": "Votre reçu — 25 000,00 €",
        "html": "<p>Merci, Jane.</p>",
        "text": "Merci, Jane.\n",
        "date": datetime(2026, 11, 26, 12, 0, tzinfo=UTC),
        "reply_to": "Support <support@ownly.com>",
        "headers": (
            ("List-Unsubscribe", UNSUBSCRIBE),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ),
        "category": "receipts",
    }
    fields.update(changes)
    return OutgoingEmail(**fields)


def assert_no_secret(error: SendError, *secrets: str) -> None:
    shown = f"{error} {error!r} {json.dumps(dict(error.detail))}"
    for secret in secrets:
        assert secret not in shown


def read(content: bytes) -> email.message.EmailMessage:
    """Wire bytes as the standard library reads a message."""
    message = email.message_from_bytes(content, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message
