"""Ownly's connectors to the outside world: webhook sender, email, Stripe, record stores."""

from __future__ import annotations

from connectors.errors import (
    BlockedAddress,
    BlockedRequest,
    BlockedUrl,
    ConnectorError,
    PolicyError,
    RequestError,
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
from connectors.ssrf import (
    METADATA_HOSTS,
    AddressPolicy,
    GuardedConnector,
    GuardedResolver,
    guarded_session,
)
from connectors.webhook import (
    REDACTED,
    Attempt,
    Outcome,
    WebhookRequest,
    WebhookSender,
    parse_retry_after,
    redact_headers,
)

__all__ = [
    "JITTER",
    "METADATA_HOSTS",
    "REDACTED",
    "SECRET_PREFIX",
    "SIGNATURE_HEADERS",
    "STANDARD_WEBHOOKS_SCHEDULE",
    "AddressPolicy",
    "Attempt",
    "BlockedAddress",
    "BlockedRequest",
    "BlockedUrl",
    "ConnectorError",
    "ExponentialPolicy",
    "GuardedConnector",
    "GuardedResolver",
    "Outcome",
    "PolicyError",
    "RequestError",
    "RetryPolicy",
    "SchedulePolicy",
    "SecretError",
    "TokenBucket",
    "WebhookRequest",
    "WebhookSecret",
    "WebhookSender",
    "default_policy",
    "generate_secret",
    "guarded_session",
    "next_delay",
    "parse_retry_after",
    "parse_secret",
    "redact_headers",
    "sign",
    "signed_headers",
]
