"""What every email provider offers: one ``send``, one ``close``, and how a send fails.

A provider makes one attempt per ``send``: it returns ``Sent`` once the
provider took the message, or raises ``SendError`` saying whether another
attempt could help::

    permanent=False   connection refused, timeout, TLS, HTTP 5xx or 429, SMTP 4xx,
                      and the provider's own configuration (401/403, SMTP AUTH):
                      retry later, or fail over to the next provider now
    permanent=True    this message was refused (SMTP 5xx for the sender, the
                      recipient or the content, HTTP 4xx): no provider will take it

When to try again, and which provider next, is the caller's: a provider never
retries by itself. No ``SendError`` and no ``Sent`` holds a credential: every
text taken from the other side passes through ``redact`` first.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from connectors.email.message import OutgoingEmail
from connectors.errors import ConnectorError
from connectors.webhook import REDACTED

__all__ = [
    "DETAIL_LIMIT",
    "EmailProvider",
    "SendError",
    "Sent",
    "caused_by_tls",
    "redact",
]

DETAIL_LIMIT = 2048


@dataclass(frozen=True)
class Sent:
    """The provider took the message.

    Attributes:
        provider_message_id: the provider's id for it (SendGrid's ``X-Message-Id``,
            Mailgun's ``id``), or the Message-ID where the provider has none of its own.
        detail: what the provider answered, e.g. ``{"status": 202}`` or
            ``{"reply": "250 2.0.0 Ok: queued as X"}``; never a credential.
    """

    provider_message_id: str | None
    detail: Mapping[str, Any] = field(default_factory=dict)


class SendError(ConnectorError):
    """The provider did not take the message.

    Its message begins with the provider's configured name, as in
    ``sendgrid answered 400: ...``, so that it reads alone in a log.

    Attributes:
        provider: the configured name of the provider that failed.
        permanent: True when this message will never be taken, by any provider.
        reason: one machine word: ``refused``, ``timeout``, ``tls``, ``auth``,
            ``io``, ``network``, ``http_503``, ``smtp_550``...
        detail: what the provider answered (a status, a reply, at most 2 KiB of
            body); never a credential.
    """

    def __init__(
        self,
        provider: str,
        reason: str,
        message: str,
        *,
        permanent: bool,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.reason = reason
        self.permanent = permanent
        self.detail: Mapping[str, Any] = dict(detail or {})

    def __repr__(self) -> str:
        return (
            f"SendError(provider={self.provider!r}, reason={self.reason!r}, "
            f"permanent={self.permanent}, message={self.message!r})"
        )


class EmailProvider(Protocol):
    """A way out for email: SMTP, an HTTP API, a directory."""

    @property
    def name(self) -> str:
        """The provider's configured name, as ``SendError.provider`` gives it."""
        ...

    async def send(self, email: OutgoingEmail) -> Sent:
        """Make one attempt to hand the email over.

        Raises:
            SendError: the provider did not take it; ``permanent`` says whether
                another attempt could.
        """
        ...

    async def close(self) -> None:
        """Let go of connections; the caller sends nothing more afterwards."""
        ...


def redact(text: str, secrets: Iterable[str | None], limit: int = DETAIL_LIMIT) -> str:
    """The text with every secret (and its base64 forms) replaced, cut to ``limit`` characters.

    Replacing happens before cutting, so no part of a secret survives at the cut.
    """
    hidden: set[str] = set()
    for secret in secrets:
        if secret:
            encoded = base64.b64encode(secret.encode()).decode()
            hidden.update((secret, encoded, encoded.rstrip("=")))
    for value in sorted(hidden, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text[:limit]


def caused_by_tls(exc: BaseException) -> bool:
    """Whether a TLS error is the exception or among its causes."""
    seen: BaseException | None = exc
    for _ in range(16):  # a chain of causes can loop
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
