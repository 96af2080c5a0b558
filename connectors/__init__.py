"""Ownly's connectors to the outside world: webhook sender, email, Stripe, record stores.

When to try again (retry policies, rate limits) is the job machinery's
(``engine.jobs.policy``): connectors make one attempt and say what happened.
"""

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
    METHODS,
    REDACTED,
    Attempt,
    Outcome,
    WebhookRequest,
    WebhookSender,
    parse_retry_after,
    redact,
    redact_headers,
)

__all__ = [
    "METADATA_HOSTS",
    "METHODS",
    "REDACTED",
    "SECRET_PREFIX",
    "SIGNATURE_HEADERS",
    "AddressPolicy",
    "Attempt",
    "BlockedAddress",
    "BlockedRequest",
    "BlockedUrl",
    "ConnectorError",
    "GuardedConnector",
    "GuardedResolver",
    "Outcome",
    "PolicyError",
    "RequestError",
    "SecretError",
    "WebhookRequest",
    "WebhookSecret",
    "WebhookSender",
    "generate_secret",
    "guarded_session",
    "parse_retry_after",
    "parse_secret",
    "redact",
    "redact_headers",
    "sign",
    "signed_headers",
]
