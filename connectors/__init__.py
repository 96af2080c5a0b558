"""Ownly's connectors to the outside world: webhook sender, email, Stripe, record stores."""

from __future__ import annotations

from connectors.errors import (
    BlockedAddress,
    BlockedRequest,
    BlockedUrl,
    ConnectorError,
    PolicyError,
    SecretError,
)
from connectors.signing import (
    SECRET_PREFIX,
    SIGNATURE_HEADERS,
    WebhookSecret,
    generate_secret,
    parse_secret,
    sign,
    signed_headers,
)

__all__ = [
    "SECRET_PREFIX",
    "SIGNATURE_HEADERS",
    "BlockedAddress",
    "BlockedRequest",
    "BlockedUrl",
    "ConnectorError",
    "PolicyError",
    "SecretError",
    "WebhookSecret",
    "generate_secret",
    "parse_secret",
    "sign",
    "signed_headers",
]
