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
from connectors.retry import (
    JITTER,
    STANDARD_WEBHOOKS_SCHEDULE,
    ExponentialPolicy,
    RetryPolicy,
    SchedulePolicy,
    TokenBucket,
    default_policy,
    next_delay,
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
    "JITTER",
    "SECRET_PREFIX",
    "SIGNATURE_HEADERS",
    "STANDARD_WEBHOOKS_SCHEDULE",
    "BlockedAddress",
    "BlockedRequest",
    "BlockedUrl",
    "ConnectorError",
    "ExponentialPolicy",
    "PolicyError",
    "RetryPolicy",
    "SchedulePolicy",
    "SecretError",
    "TokenBucket",
    "WebhookSecret",
    "default_policy",
    "generate_secret",
    "next_delay",
    "parse_secret",
    "sign",
    "signed_headers",
]
