"""The sender's pure parts: Retry-After, header redaction, request validation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors import (
    REDACTED,
    Outcome,
    RequestError,
    WebhookRequest,
    generate_secret,
    parse_retry_after,
    redact_headers,
)

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Thu, 26 Nov 2026 12:05:00 GMT", 300.0),
        ("Thursday, 26-Nov-26 12:00:30 GMT", 30.0),  # RFC 850, still allowed by HTTP
        ("Thu Nov 26 12:01:00 2026", 60.0),  # asctime
        ("Thu, 26 Nov 2026 11:00:00 GMT", 0.0),  # in the past
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("١٢", None),  # non-ASCII digits are not delta-seconds
        ("9" * 400, 366 * 86_400.0),  # a year at most; no float overflow
        ("9" * 5000, 366 * 86_400.0),  # nor int() refusing a 5,000-digit string
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, NOW) == seconds


def test_redact_headers_keeps_order_names_and_harmless_values() -> None:
    headers = [
        ("Content-Type", "application/json"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("authorization", "Bearer x"),
        ("Proxy-Authorization", "Basic y"),
        ("Cookie", "c=3"),
        ("X-Api-Key", "k"),
        ("X-Refresh-Token", "t"),
        ("X-Client-Secret", "s"),
        ("X-Session-Id", "s2"),
        ("X-Upstream-Signature", "sig"),
        ("Retry-After", "120"),
        ("Location", "/next"),
    ]
    redacted = redact_headers(headers)
    assert [name for name, _ in redacted] == [name for name, _ in headers]
    kept = {name: value for name, value in redacted if value != REDACTED}
    assert kept == {"Content-Type": "application/json", "Retry-After": "120", "Location": "/next"}


def test_outcomes_say_whether_to_retry() -> None:
    assert {o for o in Outcome if o.retryable} == {
        Outcome.FAILED,
        Outcome.THROTTLED,
        Outcome.REDIRECT,
    }


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"secrets": (generate_secret(),) * 3}, "not 3"),
        ({"message_id": ""}, "message id"),
        ({"timeout": 0}, "positive"),
        ({"method": "TRACE"}, "not 'TRACE'"),
        ({"method": "patch"}, "one of DELETE, GET, HEAD, PATCH, POST, PUT"),
        ({"method": "CONNECT", "secrets": ()}, "not 'CONNECT'"),
    ],
)
def test_an_invalid_request_is_refused(changes: dict[str, object], complaint: str) -> None:
    fields: dict[str, object] = {
        "url": "https://hooks.example/x",
        "message_id": "msg_1",
        "event_type": "deal.funded",
        "body": b"{}",
        "secrets": (generate_secret(),),
        "timestamp": 0,
    }
    with pytest.raises(RequestError, match=complaint):
        WebhookRequest(**{**fields, **changes})  # type: ignore[arg-type]


def test_secrets_given_as_a_list_are_kept_as_a_tuple() -> None:
    secret = generate_secret()
    request = WebhookRequest(
        url="https://hooks.example/x",
        message_id="msg_1",
        event_type="deal.funded",
        body=b"{}",
        secrets=[secret],  # type: ignore[arg-type]
        timestamp=0,
    )
    assert request.secrets == (secret,)


def test_a_request_without_secrets_is_unsigned_and_needs_no_message_id() -> None:
    request = WebhookRequest(
        url="https://api.example/x",
        message_id="",
        event_type="",
        body=b"",
        secrets=(),
        timestamp=0,
        method="GET",
    )
    assert not request.signed
    signed = WebhookRequest(
        url="https://hooks.example/x",
        message_id="msg_1",
        event_type="deal.funded",
        body=b"{}",
        secrets=(generate_secret(),),
        timestamp=0,
    )
    assert (signed.signed, signed.method) == (True, "POST")
