"""SendGrid's and Mailgun's event reports, read into one shape."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.email.events import (
    MAX_SENDGRID_EVENTS,
    MailgunSignature,
    ProviderEvent,
    parse_mailgun,
    parse_sendgrid,
)
from connectors.email.signatures import (
    verify_mailgun,
)
from tests.support.reports import mailgun_signature

TOLERANCE = 300.0
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
SIGNING_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
TOKEN = "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"


def _sendgrid(event: str, **fields: Any) -> dict[str, Any]:
    return {
        "email": "ada@example.com",
        "timestamp": 1767225600,
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "event": event,
        "sg_event_id": f"sg-{event}-{len(fields)}",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "ownly_email_id": "em_01",
        **fields,
    }


SENDGRID_BATCH = [
    _sendgrid("processed", category=["welcome"]),
    _sendgrid("deferred", response="400 try again later", attempt="5"),
    _sendgrid("delivered", response="250 OK", tls=1, ip="168.1.1.1"),
    _sendgrid(
        "open", sg_machine_open=False, useragent="Mozilla/5.0 (Windows NT 10.0)", ip="10.0.0.1"
    ),
    _sendgrid(
        "click",
        url="https://example.com/welcome?step=2",
        url_offset={"index": 0, "type": "html"},
        useragent="Mozilla/5.0",
    ),
    _sendgrid(
        "bounce",
        reason="550 5.1.1 The email account that you tried to reach does not exist",
        status="5.1.1",
        type="bounce",
        bounce_classification="Invalid Address",
    ),
    _sendgrid(
        "bounce",
        reason="421 4.7.0 Try again later, closing connection",
        status="4.7.0",
        type="blocked",
        bounce_classification="Reputation",
    ),
    _sendgrid("dropped", reason="Bounced Address", status="5.0.0"),
    _sendgrid("spamreport"),
    _sendgrid("unsubscribe"),
    _sendgrid("group_unsubscribe", asm_group_id=10, url="https://sendgrid.com/unsub"),
    _sendgrid("group_resubscribe", asm_group_id=10),
    _sendgrid("some_event_sendgrid_adds_later"),
]


def test_a_sendgrid_batch_maps_onto_ownlys_statuses() -> None:
    events = parse_sendgrid(json.dumps(SENDGRID_BATCH).encode())
    assert [(e.status, e.bounce_type) for e in events] == [
        ("deferred", None),
        ("delivered", None),
        ("opened", None),
        ("clicked", None),
        ("bounced", "hard"),
        ("bounced", "soft"),
        ("dropped", None),
        ("complained", None),
        ("unsubscribed", None),
        ("unsubscribed", None),
    ]
    assert {e.provider for e in events} == {"sendgrid"}
    assert {e.email_id for e in events} == {"em_01"}
    assert [e.url for e in events if e.url] == ["https://example.com/welcome?step=2"]
    assert [e.reason for e in events if e.reason] == [
        "400 try again later",
        "250 OK",
        "550 5.1.1 The email account that you tried to reach does not exist",
        "421 4.7.0 Try again later, closing connection",
        "Bounced Address",
    ]


def test_a_sendgrid_bounce_reads_whole() -> None:
    [event] = parse_sendgrid(json.dumps([SENDGRID_BATCH[5]]).encode())
    assert event == ProviderEvent(
        provider="sendgrid",
        event_id="sg-bounce-4",
        email_id="em_01",
        status="bounced",
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        recipient="ada@example.com",
        bounce_type="hard",
        reason="550 5.1.1 The email account that you tried to reach does not exist",
        detail={
            "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
            "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
            "type": "bounce",
            "status": "5.1.1",
            "bounce_classification": "Invalid Address",
        },
    )


def test_sendgrid_fields_are_capped_and_foreign_ones_left_out() -> None:
    long = "é" * 5000  # two bytes each: a cut must not split one
    event = _sendgrid(
        "open",
        useragent=long,
        reason=long,
        category=[long, 7, "news", *["c"] * 30],
        url_offset={"index": 0},
        customer_secret_arg="s3cr3t",
        ownly_email_id=12,
    )
    [opened] = parse_sendgrid(json.dumps([event]).encode())
    assert opened.detail["useragent"] == "é" * 512
    assert opened.reason == "é" * 512
    assert opened.detail["category"] == ["é" * 512, "news", *["c"] * 17]  # of the first 20
    assert "url_offset" not in opened.detail
    assert "customer_secret_arg" not in opened.detail
    assert opened.email_id is None


def test_a_sendgrid_body_may_hold_10000_events_and_no_more() -> None:
    event = _sendgrid("delivered")
    assert len(parse_sendgrid(json.dumps([event] * MAX_SENDGRID_EVENTS).encode())) == 10_000
    with pytest.raises(ValueError, match="holds 10001 events, more than 10000"):
        parse_sendgrid(json.dumps([event] * (MAX_SENDGRID_EVENTS + 1)).encode())


def _without(event: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != key}


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (b"", "SendGrid webhook body is not JSON"),
        (b"not json", "SendGrid webhook body is not JSON"),
        (b"\xff\xfe[]", "SendGrid webhook body is not JSON"),
        (b'{"event": "delivered"}', "must be a JSON array of event objects, not an object"),
        (b'"delivered"', "must be a JSON array of event objects, not a string"),
        (b"null", "must be a JSON array of event objects, not null"),
        (b"[1]", "SendGrid event 0 is a number, not an object"),
        (b"[[]]", "SendGrid event 0 is an array, not an object"),
        ([_without(_sendgrid("open"), "sg_event_id")], "SendGrid event 0 has no 'sg_event_id'"),
        ([_sendgrid("open", sg_event_id=5)], "'sg_event_id' must be a string, not a number"),
        ([_sendgrid("open", sg_event_id="")], "SendGrid event 0 'sg_event_id' is empty"),
        ([_sendgrid("open", sg_event_id="x" * 256)], "longer than 255 characters"),
        ([_sendgrid("open"), _without(_sendgrid("open"), "event")], "event 1 has no 'event'"),
        ([_without(_sendgrid("open"), "timestamp")], "SendGrid event 0 has no 'timestamp'"),
        ([_sendgrid("open", timestamp="1767225600")], "must be unix seconds, not a string"),
        ([_sendgrid("open", timestamp=True)], "must be unix seconds, not true or false"),
        ([_sendgrid("open", timestamp=1e300)], "'timestamp' 1e+300 is out of range"),
        ([_without(_sendgrid("processed"), "sg_event_id")], "has no 'sg_event_id'"),
    ],
)
def test_a_malformed_sendgrid_body_is_refused_clearly(
    body: bytes | list[dict[str, Any]], complaint: str
) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(ValueError, match=re.escape(complaint)):
        parse_sendgrid(raw)


def _mailgun(event: str, **fields: Any) -> dict[str, Any]:
    return {
        "signature": mailgun_signature(SIGNING_KEY, NOW, TOKEN),
        "event-data": {
            "id": "CPgfbmQMTCKtHW6uIWtuVe",
            "timestamp": 1767225600.529006,
            "log-level": "info",
            "event": event,
            "recipient": "ada@example.com",
            "recipient-domain": "example.com",
            "tags": ["welcome"],
            "envelope": {"transport": "smtp", "sender": "bob@mg.example.org"},
            "message": {"headers": {"message-id": "20260101000000.1.2A3B@mg.example.org"}},
            "user-variables": {"ownly_email_id": "em_02"},
            **fields,
        },
    }


MAILGUN_EVENTS = [
    (
        _mailgun(
            "delivered",
            **{"delivery-status": {"code": 250, "message": "OK", "attempt-no": 1, "tls": True}},
        ),
        ("delivered", None, "OK"),
    ),
    (
        _mailgun(
            "opened",
            ip="50.56.129.169",
            **{"client-info": {"client-type": "browser", "user-agent": "Mozilla/5.0"}},
        ),
        ("opened", None, None),
    ),
    (_mailgun("clicked", url="https://example.com/welcome?step=2"), ("clicked", None, None)),
    (
        _mailgun(
            "failed",
            severity="permanent",
            reason="bounce",
            **{
                "delivery-status": {
                    "code": 550,
                    "message": "5.1.1 The email account that you tried to reach does not exist",
                    "description": "",
                }
            },
        ),
        ("bounced", "hard", "5.1.1 The email account that you tried to reach does not exist"),
    ),
    (
        _mailgun(
            "failed",
            severity="temporary",
            reason="generic",
            **{
                "delivery-status": {
                    "code": 452,
                    "message": "4.2.2 The email account that you tried to reach is over quota",
                    "retry-seconds": 600,
                }
            },
        ),
        ("deferred", None, "4.2.2 The email account that you tried to reach is over quota"),
    ),
    (
        _mailgun(
            "failed",
            severity="permanent",
            reason="suppress-bounce",
            **{"delivery-status": {"code": 605, "description": "Not delivering to previously"}},
        ),
        ("dropped", None, "Not delivering to previously"),
    ),
    (_mailgun("failed", reason="bounce"), ("bounced", None, "bounce")),
    (_mailgun("complained"), ("complained", None, None)),
    (_mailgun("unsubscribed"), ("unsubscribed", None, None)),
    (
        _mailgun("rejected", reject={"reason": "Sandbox subdomains are for test purposes only"}),
        ("dropped", None, "Sandbox subdomains are for test purposes only"),
    ),
]


@pytest.mark.parametrize(
    ("body", "expected"), MAILGUN_EVENTS, ids=[str(i) for i in range(len(MAILGUN_EVENTS))]
)
def test_a_mailgun_event_maps_onto_ownlys_statuses(
    body: dict[str, Any], expected: tuple[str, str | None, str | None]
) -> None:
    signature, event = parse_mailgun(json.dumps(body).encode())
    assert event is not None
    assert (event.status, event.bounce_type, event.reason) == expected
    assert (event.provider, event.event_id, event.email_id) == (
        "mailgun",
        "CPgfbmQMTCKtHW6uIWtuVe",
        "em_02",
    )
    assert event.occurred_at == datetime(2026, 1, 1, 0, 0, 0, 529006, tzinfo=UTC)
    assert event.recipient == "ada@example.com"
    assert event.url == body["event-data"].get("url")
    assert signature == MailgunSignature(**body["signature"])


def test_a_mailgun_body_is_read_then_its_signature_checked() -> None:
    body = json.dumps(_mailgun("delivered")).encode()
    signature, _ = parse_mailgun(body)
    verify_mailgun(
        SIGNING_KEY,
        signature.timestamp,
        signature.token,
        signature.signature,
        now=NOW,
        tolerance=TOLERANCE,
    )


def test_a_mailgun_failure_reads_whole() -> None:
    _, event = parse_mailgun(json.dumps(MAILGUN_EVENTS[3][0]).encode())
    assert event is not None
    assert event.detail == {
        "message.headers.message-id": "20260101000000.1.2A3B@mg.example.org",
        "reason": "bounce",
        "severity": "permanent",
        "log-level": "info",
        "delivery-status.code": 550,
        "delivery-status.description": "",
        "tags": ["welcome"],
    }


@pytest.mark.parametrize("name", ["accepted", "stored", "list_member_uploaded"])
def test_a_mailgun_event_ownly_does_not_track_is_skipped(name: str) -> None:
    signature, event = parse_mailgun(json.dumps(_mailgun(name)).encode())
    assert event is None
    assert signature.token == TOKEN


@pytest.mark.parametrize("variables", [None, {}, {"ownly_email_id": 7}, "em_02"])
def test_a_mailgun_event_without_ownlys_id_has_none(variables: object) -> None:
    body = _mailgun("delivered")
    body["event-data"]["user-variables"] = variables
    _, event = parse_mailgun(json.dumps(body).encode())
    assert event is not None
    assert event.email_id is None


def _mailgun_with(path: tuple[str, ...], value: object) -> bytes:
    body = _mailgun("delivered")
    target = body
    for key in path[:-1]:
        target = target[key]
    if value is _DROP:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(body).encode()


_DROP = object()


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (b"", "Mailgun webhook body is not JSON"),
        (b"token=abc&signature=def", "Mailgun webhook body is not JSON"),
        (b"[]", "must be a JSON object, not an array"),
        (_mailgun_with(("signature",), _DROP), "must hold a 'signature' object"),
        (_mailgun_with(("signature",), "abc"), "must hold a 'signature' object"),
        (_mailgun_with(("signature", "token"), _DROP), "the Mailgun 'signature' has no 'token'"),
        (_mailgun_with(("signature", "timestamp"), NOW), "'timestamp' must be a string, not a"),
        (_mailgun_with(("signature", "signature"), ""), "'signature' 'signature' is empty"),
        (_mailgun_with(("event-data",), _DROP), "must hold an 'event-data' object"),
        (_mailgun_with(("event-data",), []), "must hold an 'event-data' object"),
        (_mailgun_with(("event-data", "id"), _DROP), "the Mailgun 'event-data' has no 'id'"),
        (_mailgun_with(("event-data", "event"), None), "'event-data' has no 'event'"),
        (_mailgun_with(("event-data", "timestamp"), _DROP), "'event-data' has no 'timestamp'"),
        (_mailgun_with(("event-data", "timestamp"), "now"), "unix seconds, not a string"),
    ],
)
def test_a_malformed_mailgun_body_is_refused_clearly(body: bytes, complaint: str) -> None:
    with pytest.raises(ValueError, match=re.escape(complaint)):
        parse_mailgun(body)
