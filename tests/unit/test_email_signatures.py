"""SendGrid's and Mailgun's event-webhook signatures: published vectors, keys made here, an
independent verifier."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from sendgrid.helpers.eventwebhook import EventWebhook

from connectors.email.events import (
    ProviderEvent,
    parse_sendgrid,
)
from connectors.email.signatures import (
    SignatureError,
    load_sendgrid_key,
    verify_mailgun,
    verify_sendgrid,
)
from connectors.errors import ConnectorError

# SendGrid's own test vector: sendgrid/sendgrid-python, test/unit/test_eventwebhook.py (76788e7).
VECTOR_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62g"
    "w+2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="
)
VECTOR_OTHER_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqTxd43gyp8IOEto2LdIfjRQrIbsd4SXZkLW6jDutdhXSJCWHw8REnt"
    "lo7aNDthvj+y7GjUuFDb/R1NGe1OPzpA=="
)
VECTOR_SIGNATURE = (
    "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+"
    "uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM="
)
VECTOR_OTHER_SIGNATURE = (
    "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+"
    "8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH3j/0="
)
VECTOR_TIMESTAMP = "1600112502"
VECTOR_BODY = (
    json.dumps(
        [
            {
                "email": "hello@world.com",
                "event": "dropped",
                "reason": "Bounced Address",
                "sg_event_id": "ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",
                "sg_message_id": (
                    "LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0"
                ),
                "smtp-id": "<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>",
                "timestamp": 1600112492,
            }
        ],
        sort_keys=True,
        separators=(",", ":"),
    )
    + "\r\n"
).encode()

TOLERANCE = 300.0
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z


def _vector(**changes: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "public_key": load_sendgrid_key(VECTOR_KEY),
        "signature": VECTOR_SIGNATURE,
        "timestamp": VECTOR_TIMESTAMP,
        "body": VECTOR_BODY,
        "now": float(VECTOR_TIMESTAMP),
        "tolerance": TOLERANCE,
    }
    return args | changes


def test_sendgrids_published_vector_is_accepted() -> None:
    verify_sendgrid(**_vector())


@pytest.mark.parametrize("position", [0, 100, len(VECTOR_BODY) - 1])
def test_sendgrids_vector_with_one_byte_changed_is_refused(position: int) -> None:
    body = bytearray(VECTOR_BODY)
    body[position] ^= 0x01
    with pytest.raises(SignatureError) as caught:
        verify_sendgrid(**_vector(body=bytes(body)))
    assert caught.value.reason == "mismatch"


@pytest.mark.parametrize(
    "changes",
    [
        {"public_key": load_sendgrid_key(VECTOR_OTHER_KEY)},
        {"signature": VECTOR_OTHER_SIGNATURE},
        {"body": b"payload"},
    ],
    ids=["other key", "other signature", "other body"],
)
def test_sendgrids_negative_vectors_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(SignatureError) as caught:
        verify_sendgrid(**_vector(**changes))
    assert caught.value.reason == "mismatch"


def test_sendgrids_vector_reads_as_one_dropped_event() -> None:
    assert parse_sendgrid(VECTOR_BODY) == [
        ProviderEvent(
            provider="sendgrid",
            event_id="ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",
            email_id=None,
            status="dropped",
            occurred_at=datetime(2020, 9, 14, 19, 41, 32, tzinfo=UTC),
            recipient="hello@world.com",
            reason="Bounced Address",
            detail={
                "sg_message_id": (
                    "LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0"
                ),
                "smtp-id": "<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>",
            },
        )
    ]


PRIVATE = ec.generate_private_key(ec.SECP256R1())
OTHER_PRIVATE = ec.generate_private_key(ec.SECP256R1())
PUBLIC_TEXT = base64.b64encode(
    PRIVATE.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode()
BODY = b'[{"email":"ada@example.com","event":"delivered","sg_event_id":"e1","timestamp":1}]\r\n'


def _sign(key: ec.EllipticCurvePrivateKey, timestamp: str, body: bytes) -> str:
    der = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(der).decode()


def _ours_accepts(signature: str, timestamp: str, body: bytes) -> bool:
    try:
        verify_sendgrid(
            load_sendgrid_key(PUBLIC_TEXT),
            signature,
            timestamp,
            body,
            now=NOW,
            tolerance=TOLERANCE,
        )
    except SignatureError as exc:
        assert exc.reason == "mismatch"
        return False
    return True


def _sendgrids_accepts(signature: str, timestamp: str, body: bytes) -> bool:
    webhook = EventWebhook()
    key = webhook.convert_public_key_to_ecdsa(PUBLIC_TEXT)
    return bool(webhook.verify_signature(body.decode(), signature, timestamp, key))


@pytest.mark.parametrize(
    ("signature", "timestamp", "body", "accepted"),
    [
        (_sign(PRIVATE, str(NOW), BODY), str(NOW), BODY, True),
        (_sign(OTHER_PRIVATE, str(NOW), BODY), str(NOW), BODY, False),
        (_sign(PRIVATE, str(NOW), BODY), str(NOW), BODY.replace(b"ada", b"eve"), False),
        (_sign(PRIVATE, str(NOW), BODY), str(NOW), BODY.rstrip(), False),
        (_sign(PRIVATE, str(NOW), BODY), str(NOW + 1), BODY, False),
        (_sign(PRIVATE, str(NOW - 1), BODY), str(NOW), BODY, False),
    ],
    ids=["good", "forged", "tampered body", "trailing newline dropped", "later", "earlier"],
)
def test_ours_and_sendgrids_helper_agree(
    signature: str, timestamp: str, body: bytes, accepted: bool
) -> None:
    assert _sendgrids_accepts(signature, timestamp, body) is accepted
    assert _ours_accepts(signature, timestamp, body) is accepted


@pytest.mark.parametrize("offset", [-TOLERANCE - 1, TOLERANCE + 1, -86_400 * 365])
def test_a_stale_sendgrid_timestamp_is_refused_though_signed(offset: float) -> None:
    timestamp = str(int(NOW + offset))
    with pytest.raises(SignatureError) as caught:
        verify_sendgrid(
            load_sendgrid_key(PUBLIC_TEXT),
            _sign(PRIVATE, timestamp, BODY),
            timestamp,
            BODY,
            now=NOW,
            tolerance=TOLERANCE,
        )
    assert caught.value.reason == "stale"
    assert ("ahead of" if offset > 0 else "behind") in caught.value.message


@pytest.mark.parametrize("offset", [-TOLERANCE, TOLERANCE])
def test_a_sendgrid_timestamp_at_the_tolerance_is_accepted(offset: float) -> None:
    timestamp = str(int(NOW + offset))
    verify_sendgrid(
        load_sendgrid_key(PUBLIC_TEXT),
        _sign(PRIVATE, timestamp, BODY),
        timestamp,
        BODY,
        now=NOW,
        tolerance=TOLERANCE,
    )


GOOD_SIGNATURE = _sign(PRIVATE, str(NOW), BODY)


@pytest.mark.parametrize(
    ("signature", "timestamp", "reason", "complaint"),
    [
        (None, str(NOW), "missing", "X-Twilio-Email-Event-Webhook-Signature header is missing"),
        ("", str(NOW), "missing", "X-Twilio-Email-Event-Webhook-Signature header is missing"),
        (GOOD_SIGNATURE, None, "missing", "X-Twilio-Email-Event-Webhook-Timestamp header is"),
        (GOOD_SIGNATURE, "", "missing", "X-Twilio-Email-Event-Webhook-Timestamp header is"),
        (GOOD_SIGNATURE, "timestamp", "malformed", "not unix seconds"),
        (GOOD_SIGNATURE, f"{NOW}.5", "malformed", "not unix seconds"),
        (GOOD_SIGNATURE, f"-{NOW}", "malformed", "not unix seconds"),
        (GOOD_SIGNATURE, f" {NOW}", "malformed", "not unix seconds"),
        (GOOD_SIGNATURE, "١٢٣", "malformed", "not unix seconds"),  # non-ASCII digits
        (GOOD_SIGNATURE, "9" * 400, "malformed", "not unix seconds"),
        ("not base64!", str(NOW), "malformed", "not base64 of a DER ECDSA signature"),
        (base64.b64encode(b"x" * 70).decode(), str(NOW), "malformed", "not base64 of a DER"),
        (GOOD_SIGNATURE + "AAAA", str(NOW), "malformed", "not base64 of a DER"),
        ("A" * 4000, str(NOW), "malformed", "not base64 of a DER"),
    ],
)
def test_a_missing_or_malformed_sendgrid_header_is_refused(
    signature: str | None, timestamp: str | None, reason: str, complaint: str
) -> None:
    with pytest.raises(SignatureError) as caught:
        verify_sendgrid(
            load_sendgrid_key(PUBLIC_TEXT), signature, timestamp, BODY, now=NOW, tolerance=TOLERANCE
        )
    assert caught.value.reason == reason
    assert complaint in caught.value.message
    assert isinstance(caught.value, ConnectorError)


def test_the_sendgrid_key_is_read_as_sendgrid_shows_it_or_as_a_pem() -> None:
    numbers = PRIVATE.public_key().public_numbers()
    pem = (
        PRIVATE.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    wrapped = "\n".join(PUBLIC_TEXT[i : i + 40] for i in range(0, len(PUBLIC_TEXT), 40))
    for text in (PUBLIC_TEXT, f"  {PUBLIC_TEXT}\n", PUBLIC_TEXT.rstrip("="), pem, wrapped):
        assert load_sendgrid_key(text).public_numbers() == numbers


def _spki(key: Any) -> str:
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("not a key at all!", "base64 text SendGrid's settings show"),
        (base64.b64encode(b"not DER").decode(), "base64 text SendGrid's settings show"),
        ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----", "or a PEM public key"),
        (_spki(rsa.generate_private_key(65537, 2048).public_key()), "ECDSA P-256 public key, not"),
        (_spki(ed25519.Ed25519PrivateKey.generate().public_key()), "ECDSA P-256 public key"),
        (_spki(ec.generate_private_key(ec.SECP384R1()).public_key()), "not secp384r1"),
    ],
)
def test_a_key_that_is_not_p256_is_refused_at_configuration(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=re.escape(complaint)) as caught:
        load_sendgrid_key(text)
    if text.strip():
        assert text.strip() not in str(caught.value)


SIGNING_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
TOKEN = "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"


def _mailgun_signature(timestamp: str, token: str = TOKEN, key: str = SIGNING_KEY) -> str:
    return hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()


def test_a_good_mailgun_signature_is_accepted() -> None:
    timestamp = str(NOW - 10)
    signature = _mailgun_signature(timestamp)
    verify_mailgun(SIGNING_KEY, timestamp, TOKEN, signature, now=NOW, tolerance=TOLERANCE)
    verify_mailgun(SIGNING_KEY, timestamp, TOKEN, signature.upper(), now=NOW, tolerance=TOLERANCE)


@pytest.mark.parametrize(
    ("timestamp", "token", "signature", "reason"),
    [
        (str(NOW), TOKEN, _mailgun_signature(str(NOW), key="key-another"), "mismatch"),
        (str(NOW), TOKEN, _mailgun_signature(str(NOW - 1)), "mismatch"),
        (str(NOW), TOKEN[:-1] + "1", _mailgun_signature(str(NOW)), "mismatch"),
        (str(NOW - 301), TOKEN, _mailgun_signature(str(NOW - 301)), "stale"),
        (str(NOW + 301), TOKEN, _mailgun_signature(str(NOW + 301)), "stale"),
        ("", TOKEN, _mailgun_signature(""), "missing"),
        (str(NOW), "", _mailgun_signature(str(NOW), token=""), "missing"),
        (str(NOW), TOKEN, "", "missing"),
        ("soon", TOKEN, _mailgun_signature("soon"), "malformed"),
        (f"{NOW}.0", TOKEN, _mailgun_signature(f"{NOW}.0"), "malformed"),
        (str(NOW), "t" * 256, _mailgun_signature(str(NOW), token="t" * 256), "malformed"),
        (str(NOW), TOKEN, _mailgun_signature(str(NOW))[:-1], "malformed"),
        (str(NOW), TOKEN, "z" * 64, "malformed"),
        (str(NOW), TOKEN, base64.b64encode(b"\0" * 32).decode(), "malformed"),
    ],
    ids=[
        "wrong key",
        "other timestamp",
        "other token",
        "stale",
        "ahead",
        "no timestamp",
        "no token",
        "no signature",
        "timestamp not a number",
        "timestamp with a fraction",
        "token too long",
        "signature too short",
        "signature not hex",
        "signature in base64",
    ],
)
def test_a_bad_mailgun_signature_is_refused(
    timestamp: str, token: str, signature: str, reason: str
) -> None:
    with pytest.raises(SignatureError) as caught:
        verify_mailgun(SIGNING_KEY, timestamp, token, signature, now=NOW, tolerance=TOLERANCE)
    assert caught.value.reason == reason
    assert SIGNING_KEY not in caught.value.message


def test_an_empty_mailgun_key_is_a_configuration_fault() -> None:
    with pytest.raises(ValueError, match="signing key is empty"):
        verify_mailgun("", str(NOW), TOKEN, "0" * 64, now=NOW, tolerance=TOLERANCE)


def test_a_negative_tolerance_is_refused() -> None:
    with pytest.raises(ValueError, match="tolerance must be at least 0"):
        verify_mailgun(SIGNING_KEY, str(NOW), TOKEN, "0" * 64, now=NOW, tolerance=-1)
