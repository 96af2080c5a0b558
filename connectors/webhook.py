"""The webhook sender: one request, signed when it has secrets, and a record of what happened.

A webhook is a signed POST. The same sender, behind the same address guard,
makes the other outbound requests of the engine: a workflow's ``http`` step
(any of GET, POST, PUT, PATCH, DELETE, HEAD, unsigned) and a record written to
the platform (a signed PATCH). A request without secrets carries no
``webhook-*`` headers: only its own headers, ``User-Agent`` and, with a body,
``Content-Type: application/json``.

``WebhookSender.send`` makes exactly one attempt and never raises for anything
the network or the receiver does: every result becomes an ``Attempt`` with an
``Outcome`` the engine acts on::

    delivered  2xx
    failed     any other status, a timeout, a connection error: retry
    throttled  429, or 503 with Retry-After: retry, after ``retry_after`` seconds
    redirect   3xx: a failure (redirects are never followed), retry
    gone       410: the engine disables the webhook
    blocked    the address guard refused the URL, or it is not a URL: do not retry

The attempt holds no secret: the request's headers (and so its signatures) are
not kept, the response's credential-like headers are redacted, and error
messages name the receiver's origin only (a webhook URL may carry a token in
its path or query).
"""

from __future__ import annotations

import email.utils
import enum
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from yarl import URL

from connectors.errors import BlockedRequest, BlockedUrl, RequestError
from connectors.signing import WebhookSecret, signed_headers

__all__ = [
    "METHODS",
    "REDACTED",
    "Attempt",
    "Outcome",
    "WebhookRequest",
    "WebhookSender",
    "parse_retry_after",
    "redact",
    "redact_headers",
]

REDACTED = "<redacted>"
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"})
"""The methods a request may use."""
_SENSITIVE_NAMES = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
_SENSITIVE_PARTS = ("token", "secret", "key", "auth", "password", "session", "signature")
_MESSAGE_LIMIT = 500
_DELTA_SECONDS = re.compile(r"^[0-9]+$")
_YEAR = 366 * 86_400


class Outcome(enum.StrEnum):
    """What one attempt came to, and so what the engine does next."""

    DELIVERED = "delivered"
    FAILED = "failed"
    THROTTLED = "throttled"
    REDIRECT = "redirect"
    GONE = "gone"
    BLOCKED = "blocked"

    @property
    def retryable(self) -> bool:
        return self in (Outcome.FAILED, Outcome.THROTTLED, Outcome.REDIRECT)


@dataclass(frozen=True)
class WebhookRequest:
    """One attempt to make.

    Attributes:
        url: the receiver's ``http(s)://`` URL.
        message_id: the ``webhook-id``: the same on every retry of a delivery
            (unused by an unsigned request).
        event_type: sent as ``X-Event-Type`` by a signed request.
        body: the exact JSON bytes to send and sign; empty for none.
        secrets: one secret, or two during a rotation (current first); none
            for an unsigned request.
        timestamp: ``webhook-timestamp``, seconds since the epoch from the caller's clock.
        headers: extra headers; they cannot replace the signing headers,
            ``User-Agent`` or ``Content-Type``.
        timeout: seconds for the whole attempt: connect, send, answer and body.
        method: one of ``METHODS``.
    """

    url: str
    message_id: str
    event_type: str
    body: bytes
    secrets: tuple[WebhookSecret, ...]
    timestamp: int
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 15.0
    method: str = "POST"

    def __post_init__(self) -> None:
        object.__setattr__(self, "secrets", tuple(self.secrets))
        if len(self.secrets) > 2:
            raise RequestError(
                f"a webhook is signed with one secret, or two during a rotation, "
                f"not {len(self.secrets)}"
            )
        if self.secrets and not self.message_id:
            raise RequestError("a webhook request needs a message id")
        if not self.timeout > 0:
            raise RequestError(f"a webhook timeout must be positive, not {self.timeout}")
        if self.method not in METHODS:
            raise RequestError(
                f"the method must be one of {', '.join(sorted(METHODS))}, not {self.method!r}"
            )

    @property
    def signed(self) -> bool:
        """Whether the request carries signatures (it has secrets)."""
        return bool(self.secrets)


@dataclass(frozen=True)
class Attempt:
    """The record of one attempt; ``to_dict`` gives it as JSON-ready data."""

    outcome: Outcome
    started_at: datetime
    duration: float
    status: int | None = None
    response_headers: tuple[tuple[str, str], ...] = ()
    response_body: str = ""
    response_body_truncated: bool = False
    retry_after: float | None = None
    error_class: str | None = None
    error_message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The attempt as JSON types: ``json.dumps(attempt.to_dict())`` works."""
        return {
            "outcome": self.outcome.value,
            "started_at": self.started_at.isoformat(),
            "duration": self.duration,
            "status": self.status,
            "response_headers": [list(pair) for pair in self.response_headers],
            "response_body": self.response_body,
            "response_body_truncated": self.response_body_truncated,
            "retry_after": self.retry_after,
            "error_class": self.error_class,
            "error_message": self.error_message,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Attempt:
        """Read back what ``to_dict`` wrote."""
        return cls(
            outcome=Outcome(data["outcome"]),
            started_at=datetime.fromisoformat(data["started_at"]),
            duration=float(data["duration"]),
            status=data["status"],
            response_headers=tuple((str(k), str(v)) for k, v in data["response_headers"]),
            response_body=data["response_body"],
            response_body_truncated=bool(data["response_body_truncated"]),
            retry_after=data["retry_after"],
            error_class=data["error_class"],
            error_message=data["error_message"],
        )


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from ``now`` that a ``Retry-After`` value asks for; None when unreadable.

    Reads delta-seconds (``120``) and HTTP-dates (``Wed, 21 Oct 2026 07:28:00 GMT``);
    a date in the past gives 0.
    """
    if value is None:
        return None
    value = value.strip()
    if _DELTA_SECONDS.match(value):
        # A year is plenty (the policy clamps it anyway); 400 digits would overflow a float.
        return float(min(int(value), _YEAR)) if len(value) <= 12 else float(_YEAR)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def redact_headers(headers: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """The headers with every credential-like value replaced by ``<redacted>``."""
    return tuple((name, REDACTED if _sensitive(name) else value) for name, value in headers)


def redact(value: Any) -> Any:
    """``value`` (JSON data) with the value of every credential-like key replaced by
    ``<redacted>``, at any depth."""
    if isinstance(value, dict):
        return {k: REDACTED if _sensitive(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def _sensitive(name: str) -> bool:
    lowered = name.lower()
    return lowered in _SENSITIVE_NAMES or any(part in lowered for part in _SENSITIVE_PARTS)


class WebhookSender:
    """Sends webhook requests through an injected session, one attempt per ``send``.

    Args:
        session: the shared client pool, built by ``guarded_session``; the
            caller owns and closes it.
        user_agent: ``Ownly/<version>``.
        response_body_limit: bytes of the response body kept; the rest is not read.
        clock: wall-clock seconds since the epoch, for ``started_at`` and HTTP-dates.
        monotonic: seconds from a monotonic clock, for ``duration``.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        user_agent: str,
        response_body_limit: int = 16384,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if response_body_limit < 0:
            raise RequestError("response_body_limit must not be negative")
        self._session = session
        self._user_agent = user_agent
        self._limit = response_body_limit
        self._clock = clock
        self._monotonic = monotonic

    async def send(self, request: WebhookRequest) -> Attempt:
        """Send the request once and record what happened; never raises for the network."""
        headers = self._headers(request)
        started_at = datetime.fromtimestamp(self._clock(), UTC)
        start = self._monotonic()
        error: Exception
        try:
            try:
                url = URL(request.url)
            except (TypeError, ValueError):
                raise BlockedUrl("not a valid URL") from None
            if url.scheme not in ("http", "https"):
                raise BlockedUrl(f"only http:// and https:// URLs are sent, not {url.scheme}://")
            if not url.host:
                raise BlockedUrl("not a valid URL: it has no host")
            async with self._session.request(
                request.method,
                request.url,
                data=request.body if request.body or request.signed else None,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=request.timeout),
            ) as response:
                body, truncated = await self._read_body(response)
                if truncated:
                    response.close()  # do not drain what will not be kept
                status = response.status
                retry_after = parse_retry_after(
                    response.headers.get("Retry-After"),
                    datetime.fromtimestamp(self._clock(), UTC),
                )
                return Attempt(
                    outcome=_outcome(status, retry_after),
                    started_at=started_at,
                    duration=self._monotonic() - start,
                    status=status,
                    response_headers=redact_headers(list(response.headers.items())),
                    response_body=body.decode("utf-8", errors="replace"),
                    response_body_truncated=truncated,
                    retry_after=retry_after if status in (429, 503) else None,
                )
        except (BlockedRequest, aiohttp.InvalidURL) as exc:
            # Refused before sending: retrying the same URL cannot help.
            outcome, error = Outcome.BLOCKED, exc
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            outcome, error = Outcome.FAILED, exc
        return Attempt(
            outcome=outcome,
            started_at=started_at,
            duration=self._monotonic() - start,
            error_class=type(error).__name__,
            error_message=_describe(error, request),
        )

    def _headers(self, request: WebhookRequest) -> dict[str, str]:
        """The request's own headers, then the sender's: signatures (when signed),
        ``User-Agent``, and ``Content-Type`` for a body."""
        if not request.signed:
            headers = {
                name: value
                for name, value in request.headers.items()
                if name.lower() not in _OWN_NAMES
            }
            headers["User-Agent"] = self._user_agent
            if request.body:
                headers["Content-Type"] = "application/json"
            return headers
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.lower() not in _SIGNING_NAMES
        }
        headers.update(
            signed_headers(
                secrets=request.secrets,
                message_id=request.message_id,
                timestamp=request.timestamp,
                body=request.body,
                event_type=request.event_type,
                user_agent=self._user_agent,
            )
        )
        return headers

    async def _read_body(self, response: aiohttp.ClientResponse) -> tuple[bytes, bool]:
        chunks: list[bytes] = []
        size = 0
        while size <= self._limit:
            chunk = await response.content.read(self._limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        data = b"".join(chunks)
        return data[: self._limit], len(data) > self._limit


_SIGNING_NAMES = frozenset(
    {
        "content-type",
        "user-agent",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "x-webhook-signature",
        "x-event-type",
    }
)

_OWN_NAMES = frozenset({"content-type", "user-agent"})


def _outcome(status: int, retry_after: float | None) -> Outcome:
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if 300 <= status < 400:
        return Outcome.REDIRECT
    if status == 410:
        return Outcome.GONE
    if status == 429 or (status == 503 and retry_after is not None):
        return Outcome.THROTTLED
    return Outcome.FAILED


def _describe(error: BaseException, request: WebhookRequest) -> str:
    """A message for the attempt log: no URL path or query, no credentials, no secret."""
    message = str(error)
    if isinstance(error, TimeoutError):
        detail = f": {message}" if message else ""
        message = f"no complete answer within {request.timeout:g}s{detail}"
    elif not message:
        message = (type(error).__doc__ or type(error).__name__).strip().splitlines()[0]
    try:
        url = URL(request.url)
    except (TypeError, ValueError):
        return message[:_MESSAGE_LIMIT]
    origin = f"{url.scheme}://{url.host}" + (f":{url.explicit_port}" if url.explicit_port else "")
    hidden: list[tuple[str, str]] = [(request.url, origin), (str(url), origin)]
    if len(url.raw_path_qs) > 4:  # shorter ones hide nothing and would mangle the message
        hidden.append((url.raw_path_qs, "/..."))
        hidden.append((url.path_qs, "/..."))
    for part in (url.user, url.password, url.raw_user, url.raw_password):
        if part:
            hidden.append((part, REDACTED))
    for secret in request.secrets:
        revealed = secret.reveal()
        hidden.append((revealed, REDACTED))
        hidden.append((revealed.removeprefix("whsec_"), REDACTED))
    for text, replacement in sorted(hidden, key=lambda pair: -len(pair[0])):
        if text:
            message = message.replace(text, replacement)
    return message[:_MESSAGE_LIMIT]
