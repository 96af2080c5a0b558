"""Webhook signatures: Standard Webhooks (``webhook-*`` headers) plus the seed's headers.

A secret is written ``whsec_<base64>``; its decoded bytes are the HMAC key.
Each request carries::

    webhook-id:          the message id, the same on every retry of one delivery
    webhook-timestamp:   integer seconds since the epoch, from the caller's clock
    webhook-signature:   v1,<base64 HMAC-SHA256 of "id.timestamp.body">, one per
                         secret, space-separated (two during a secret rotation)
    X-Webhook-Signature: hex HMAC-SHA256 of the body alone, with the first
                         (current) secret's key: what the platform's older
                         receivers check
    X-Event-Type:        the event type
    User-Agent:          Ownly/<version>

A ``WebhookSecret`` never shows its key in ``repr`` or ``str``; only
``reveal()`` gives the ``whsec_`` text back, for the operator who creates one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from secrets import token_bytes

from connectors.errors import SecretError

__all__ = [
    "SECRET_PREFIX",
    "SIGNATURE_HEADERS",
    "WebhookSecret",
    "generate_secret",
    "parse_secret",
    "sign",
    "signed_headers",
]

SECRET_PREFIX = "whsec_"  # noqa: S105 -- the format's prefix, not a secret
MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64

SIGNATURE_HEADERS = frozenset({"webhook-signature", "x-webhook-signature"})
"""Header names (lower case) whose values are signatures: never logged, never stored."""


@dataclass(frozen=True)
class WebhookSecret:
    """A webhook signing key; its bytes stay out of ``repr``."""

    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not MIN_KEY_BYTES <= len(self.key) <= MAX_KEY_BYTES:
            raise SecretError(
                f"a webhook secret must hold {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes, "
                f"this one holds {len(self.key)}"
            )

    def reveal(self) -> str:
        """The secret in ``whsec_<base64>`` form, to hand to the receiver once."""
        return SECRET_PREFIX + base64.b64encode(self.key).decode("ascii")

    def __str__(self) -> str:
        return "whsec_<redacted>"


def generate_secret(nbytes: int = 32) -> WebhookSecret:
    """A new random secret of ``nbytes`` bytes (24 to 64)."""
    return WebhookSecret(token_bytes(nbytes))


def parse_secret(text: str) -> WebhookSecret:
    """Read a ``whsec_<base64>`` secret; padding may be left out.

    Raises:
        SecretError: the prefix is missing, the rest is not base64, or the key
            is shorter than 24 or longer than 64 bytes. The message never
            repeats the value.
    """
    text = text.strip()
    if not text.startswith(SECRET_PREFIX):
        raise SecretError("a webhook secret must start with 'whsec_' followed by base64")
    encoded = text[len(SECRET_PREFIX) :]
    if not encoded:
        raise SecretError("a webhook secret has nothing after 'whsec_'")
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SecretError(
            "a webhook secret must be base64 (A-Z, a-z, 0-9, '+', '/') after 'whsec_'"
        ) from None
    return WebhookSecret(key)


def sign(secrets: Sequence[WebhookSecret], message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64>`` for each secret, space-separated."""
    if not secrets:
        raise SecretError("at least one webhook secret is needed to sign")
    content = b"%s.%d.%s" % (message_id.encode("utf-8"), timestamp, body)
    return " ".join(
        "v1," + base64.b64encode(hmac.new(s.key, content, hashlib.sha256).digest()).decode()
        for s in secrets
    )


def signed_headers(
    *,
    secrets: Sequence[WebhookSecret],
    message_id: str,
    timestamp: int,
    body: bytes,
    event_type: str,
    user_agent: str,
) -> dict[str, str]:
    """Every header a webhook request carries for its signature, type and origin."""
    if not secrets:
        raise SecretError("at least one webhook secret is needed to sign")
    return {
        "Content-Type": "application/json",
        "User-Agent": user_agent,
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secrets, message_id, timestamp, body),
        "X-Webhook-Signature": hmac.new(secrets[0].key, body, hashlib.sha256).hexdigest(),
        "X-Event-Type": event_type,
    }
