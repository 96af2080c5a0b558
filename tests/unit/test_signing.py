"""Signing: secrets in ``whsec_`` form and Standard Webhooks signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from connectors import (
    SecretError,
    WebhookSecret,
    generate_secret,
    parse_secret,
    sign,
    signed_headers,
)

KEY = bytes(range(32))
TEXT = "whsec_" + base64.b64encode(KEY).decode()


def test_parse_reads_the_key_and_reveal_gives_it_back() -> None:
    secret = parse_secret(TEXT)
    assert secret.key == KEY
    assert secret.reveal() == TEXT


def test_parse_accepts_missing_padding() -> None:
    key = bytes(range(25))  # 25 bytes: base64 ends with '=='
    padded = base64.b64encode(key).decode()
    assert padded.endswith("==")
    assert parse_secret("whsec_" + padded.rstrip("=")).key == key


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "must start with 'whsec_'"),
        (base64.b64encode(KEY).decode(), "must start with 'whsec_'"),
        ("whsk_" + base64.b64encode(KEY).decode(), "must start with 'whsec_'"),
        ("whsec_", "nothing after 'whsec_'"),
        ("whsec_not*base64*at*all!", "must be base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "24 to 64 bytes, this one holds 5"),
        ("whsec_" + base64.b64encode(bytes(65)).decode(), "this one holds 65"),
    ],
)
def test_a_malformed_secret_is_refused_without_repeating_it(text: str, complaint: str) -> None:
    with pytest.raises(SecretError) as caught:
        parse_secret(text)
    assert complaint in caught.value.message
    encoded = text.removeprefix("whsec_")
    if encoded:
        assert encoded not in caught.value.message


def test_the_key_never_shows_in_repr_or_str() -> None:
    secret = parse_secret(TEXT)
    for shown in (repr(secret), str(secret), repr([secret])):
        assert TEXT.removeprefix("whsec_") not in shown
        assert repr(KEY) not in shown


def test_generated_secrets_are_random_and_parse_back() -> None:
    first, second = generate_secret(), generate_secret()
    assert first != second
    assert len(first.key) == 32
    assert parse_secret(first.reveal()) == first


def test_signature_verifies_with_the_standardwebhooks_library() -> None:
    secret = parse_secret(TEXT)
    body = b'{"id":"evt_1","type":"deal.funded","data":{"amount":"10000.00"}}'
    now = int(time.time())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(now),
        "webhook-signature": sign([secret], "msg_1", now, body),
    }
    assert Webhook(TEXT).verify(body, headers)["id"] == "evt_1"
    with pytest.raises(WebhookVerificationError):
        Webhook(TEXT).verify(body.replace(b"10000", b"99999"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret().reveal()).verify(body, headers)


def test_rotation_signs_with_both_secrets_in_order() -> None:
    old, new = parse_secret(TEXT), generate_secret()
    value = sign([old, new], "msg_1", 1_700_000_000, b"{}")
    first, second = value.split(" ")
    assert first == sign([old], "msg_1", 1_700_000_000, b"{}")
    assert second == sign([new], "msg_1", 1_700_000_000, b"{}")


def test_known_signature_vector() -> None:
    # The example of the Standard Webhooks specification.
    secret = parse_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    signature = sign([secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signed_headers_carry_the_seed_headers() -> None:
    secret, other = parse_secret(TEXT), generate_secret()
    body = b'{"id":"evt_1"}'
    headers = signed_headers(
        secrets=[secret, other],
        message_id="msg_9",
        timestamp=1_700_000_000,
        body=body,
        event_type="deal.funded",
        user_agent="Ownly/1.2.3",
    )
    assert headers["X-Webhook-Signature"] == hmac.new(KEY, body, hashlib.sha256).hexdigest()
    assert headers["X-Event-Type"] == "deal.funded"
    assert headers["User-Agent"] == "Ownly/1.2.3"
    assert headers["Content-Type"] == "application/json"
    assert headers["webhook-id"] == "msg_9"
    assert headers["webhook-timestamp"] == "1700000000"
    assert len(headers["webhook-signature"].split(" ")) == 2


def test_signing_needs_a_secret() -> None:
    with pytest.raises(SecretError):
        sign([], "msg_1", 0, b"{}")


def test_a_key_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(SecretError, match="holds 8"):
        WebhookSecret(bytes(8))
