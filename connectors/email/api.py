"""One POST to a provider's HTTP API, and its failures as ``SendError``.

Shared by the SendGrid and Mailgun providers. The classification::

    2xx                 taken
    401, 403            not permanent, reason ``auth``: the provider's key is wrong
    404                 not permanent: the endpoint is fixed, so a 404 means the
                        provider's URL or domain is wrong, not the message
    408, 429, 5xx, 3xx  not permanent: try again, or another provider
    any other 4xx       permanent: the provider refused this message

Timeouts, refused connections, TLS failures and broken connections are not
permanent. Nothing from the request (its key) reaches a message or a detail,
and what comes from the response is redacted and cut to 2 KiB.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from connectors.email.base import DETAIL_LIMIT, SendError, caused_by_tls, redact

__all__ = ["Answer", "http_error", "post"]

_READ_LIMIT = 65536  # enough for any error document; the detail keeps 2 KiB
_SUMMARY_LIMIT = 300
_CONFIGURATION = frozenset({401, 403, 404})
_TRANSIENT_4XX = frozenset({408, 429})


@dataclass(frozen=True)
class Answer:
    """A response: its status, headers and the first 64 KiB of its body."""

    status: int
    headers: httpx.Headers
    body: bytes

    def json(self) -> Any:
        """The body as JSON; None when it is not JSON (or was cut)."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


async def post(
    client: httpx.AsyncClient,
    provider: str,
    url: str,
    *,
    secrets: Iterable[str],
    **request: Any,
) -> Answer:
    """POST once; a network failure becomes a ``SendError`` that is not permanent.

    Args:
        client: the shared client; its timeouts apply.
        provider: the provider's name, for errors.
        url: the endpoint.
        secrets: what must never appear in an error (the key, its header forms).
        request: passed to ``client.stream``: ``json=``, ``data=``, ``headers=``, ``auth=``.
    """
    secrets = list(secrets)
    try:
        async with client.stream("POST", url, **request) as response:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size > _READ_LIMIT:
                    break
            return Answer(response.status_code, response.headers, b"".join(chunks)[:_READ_LIMIT])
    except httpx.TimeoutException as exc:
        what = f"at {_origin(url)} did not answer in time"
        raise _network_error(provider, "timeout", what, exc, secrets) from exc
    except httpx.ConnectError as exc:
        if caused_by_tls(exc):
            what = f"TLS with {_origin(url)} failed"
            raise _network_error(provider, "tls", what, exc, secrets) from exc
        what = f"at {_origin(url)} could not be reached"
        raise _network_error(provider, "refused", what, exc, secrets) from exc
    except httpx.RequestError as exc:  # a broken connection, a body that cannot be decoded
        what = f"connection to {_origin(url)} failed"
        raise _network_error(provider, "network", what, exc, secrets) from exc


def http_error(
    provider: str, answer: Answer, messages: Sequence[str], secrets: Iterable[str]
) -> SendError:
    """The ``SendError`` for a status that is not 2xx.

    Args:
        provider: the provider's name.
        answer: the response.
        messages: the provider's own error messages, read from its body.
        secrets: what must never appear in the error.
    """
    secrets = list(secrets)
    status = answer.status
    text = redact(answer.body.decode("utf-8", "replace"), secrets)
    cleaned = [redact(message, secrets, _SUMMARY_LIMIT) for message in messages]
    said = "; ".join(cleaned) or text[:_SUMMARY_LIMIT] or httpx.codes.get_reason_phrase(status)
    detail: dict[str, Any] = {"status": status, "body": text}
    if cleaned:
        detail["errors"] = cleaned
    retry_after = answer.headers.get("Retry-After")
    if retry_after is not None:
        detail["retry_after"] = redact(retry_after, secrets, 64)
    reason = "auth" if status in (401, 403) else f"http_{status}"
    permanent = 400 <= status < 500 and status not in _CONFIGURATION | _TRANSIENT_4XX
    message = f"{provider} answered {status}: {said or 'no body'}"
    return SendError(
        provider, reason, redact(message, secrets, DETAIL_LIMIT), permanent=permanent, detail=detail
    )


def _origin(url: str) -> str:
    parsed = httpx.URL(url)
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}"


def _network_error(
    provider: str, reason: str, what: str, exc: Exception, secrets: list[str]
) -> SendError:
    said = str(exc) or type(exc).__name__
    message = redact(f"{provider} {what}: {said}", secrets)
    return SendError(
        provider, reason, message, permanent=False, detail={"error": type(exc).__name__}
    )
