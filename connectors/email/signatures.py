"""Signatures of the providers' event webhooks: SendGrid's ECDSA, Mailgun's HMAC.

::

    SendGrid  X-Twilio-Email-Event-Webhook-Timestamp: unix seconds
              X-Twilio-Email-Event-Webhook-Signature: base64 of a DER ECDSA
                  signature (P-256, SHA-256) over the timestamp then the raw body
    Mailgun   the body's "signature": hex HMAC-SHA256 of timestamp + token under
                  the webhook signing key; it covers no byte of the event

A receiver verifies first (``verify_sendgrid`` on the raw body and headers,
``verify_mailgun`` on the fields ``parse_mailgun`` returns), then reads the
reports (``connectors.email.events``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Literal

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from connectors.errors import ConnectorError

__all__ = [
    "SENDGRID_SIGNATURE_HEADER",
    "SENDGRID_TIMESTAMP_HEADER",
    "SignatureError",
    "SignatureFailure",
    "load_sendgrid_key",
    "verify_mailgun",
    "verify_sendgrid",
]

SENDGRID_SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"

SignatureFailure = Literal["missing", "malformed", "mismatch", "stale", "replayed"]

_SECONDS = re.compile(r"[0-9]{1,12}")
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_MAX_SIGNATURE_CHARS = 200  # a DER P-256 signature is at most 72 bytes, 96 in base64
_MAX_TOKEN_CHARS = 255


class SignatureError(ConnectorError):
    """The webhook's signature was refused.

    Attributes:
        reason: ``missing``, ``malformed``, ``mismatch``, ``stale``, or
            ``replayed`` (raised by the caller that keeps the seen tokens).
    """

    def __init__(self, reason: SignatureFailure, message: str) -> None:
        super().__init__(message)
        self.reason: SignatureFailure = reason


def load_sendgrid_key(text: str) -> ec.EllipticCurvePublicKey:
    """Read SendGrid's verification key, as its settings page shows it, or as a PEM.

    Raises:
        ValueError: the text is not base64 of a DER public key nor a PEM, or the
            key is not an ECDSA P-256 public key.
    """
    stripped = text.strip()
    if not stripped:
        raise ValueError("the SendGrid verification key is empty")
    try:
        if stripped.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(stripped.encode("ascii"))
        else:
            encoded = "".join(stripped.split())
            der = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
            key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm):  # binascii.Error is a ValueError
        raise ValueError(
            "the SendGrid verification key must be the base64 text SendGrid's settings show "
            "(a DER public key) or a PEM public key"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError(
            "the SendGrid verification key must be an ECDSA P-256 public key, "
            f"not {type(key).__name__}"
        )
    if not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(
            f"the SendGrid verification key must be on the P-256 curve, not {key.curve.name}"
        )
    return key


def verify_sendgrid(
    public_key: ec.EllipticCurvePublicKey,
    signature: str | None,
    timestamp: str | None,
    body: bytes,
    *,
    now: float,
    tolerance: float,
) -> None:
    """Check SendGrid's signature of a raw event body.

    Args:
        public_key: from ``load_sendgrid_key``, read once with the configuration.
        signature: the ``X-Twilio-Email-Event-Webhook-Signature`` header.
        timestamp: the ``X-Twilio-Email-Event-Webhook-Timestamp`` header.
        body: the request body exactly as received.
        now: the receiver's clock, seconds since the epoch.
        tolerance: how many seconds the timestamp may be from ``now``.

    Raises:
        SignatureError: a header is missing (``missing``), the timestamp is not
            unix seconds or the signature not base64 of a DER ECDSA signature
            (``malformed``), the timestamp is too far from ``now`` (``stale``), or
            the signature does not match (``mismatch``).
    """
    if not signature:
        raise SignatureError("missing", f"the {SENDGRID_SIGNATURE_HEADER} header is missing")
    if not timestamp:
        raise SignatureError("missing", f"the {SENDGRID_TIMESTAMP_HEADER} header is missing")
    _check_time("SendGrid", timestamp, now=now, tolerance=tolerance)
    try:
        if len(signature) > _MAX_SIGNATURE_CHARS:
            raise ValueError
        raw = base64.b64decode(signature.strip(), validate=True)
        decode_dss_signature(raw)
    except ValueError:
        raise SignatureError(
            "malformed", "the SendGrid signature is not base64 of a DER ECDSA signature"
        ) from None
    try:
        public_key.verify(raw, timestamp.encode("ascii") + body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureError(
            "mismatch", "the SendGrid signature does not match the timestamp and body"
        ) from None


def verify_mailgun(
    signing_key: str,
    timestamp: str,
    token: str,
    signature: str,
    *,
    now: float,
    tolerance: float,
) -> None:
    """Check the ``signature`` block of a Mailgun webhook.

    The signature covers the timestamp and the token, never the event: a
    captured request stays valid for ``tolerance`` seconds. The caller refuses
    a token it has already seen within that window, against its own store, and
    raises ``SignatureError("replayed", ...)`` for it.

    Args:
        signing_key: the domain's HTTP webhook signing key.
        timestamp: ``signature.timestamp``, unix seconds.
        token: ``signature.token``, random per request.
        signature: ``signature.signature``, hex HMAC-SHA256 of timestamp + token.
        now: the receiver's clock, seconds since the epoch.
        tolerance: how many seconds the timestamp may be from ``now``.

    Raises:
        ValueError: the signing key is empty (a configuration fault).
        SignatureError: a field is empty (``missing``), the timestamp is not unix
            seconds, the token too long or the signature not 64 hex digits
            (``malformed``), the timestamp is too far from ``now`` (``stale``),
            or the signature does not match (``mismatch``).
    """
    if not signing_key:
        raise ValueError("the Mailgun webhook signing key is empty")
    for name, value in (("timestamp", timestamp), ("token", token), ("signature", signature)):
        if not value:
            raise SignatureError("missing", f"the Mailgun signature's {name} is missing")
    _check_time("Mailgun", timestamp, now=now, tolerance=tolerance)
    if len(token) > _MAX_TOKEN_CHARS:
        raise SignatureError(
            "malformed", f"the Mailgun token is longer than {_MAX_TOKEN_CHARS} characters"
        )
    if not _HEX_SHA256.fullmatch(signature):
        raise SignatureError("malformed", "the Mailgun signature is not 64 hex digits")
    expected = hmac.new(
        signing_key.encode("utf-8"), (timestamp + token).encode("utf-8"), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, signature.lower()):
        raise SignatureError(
            "mismatch", "the Mailgun signature does not match the timestamp and token"
        )


def _check_time(provider: str, timestamp: str, *, now: float, tolerance: float) -> None:
    if tolerance < 0:
        raise ValueError(f"the signature tolerance must be at least 0 seconds, not {tolerance}")
    if not _SECONDS.fullmatch(timestamp):
        raise SignatureError(
            "malformed", f"the {provider} timestamp is not unix seconds (up to 12 digits)"
        )
    offset = int(timestamp) - now
    if abs(offset) > tolerance:
        raise SignatureError(
            "stale",
            f"the {provider} timestamp is {abs(offset):.0f} seconds "
            f"{'ahead of' if offset > 0 else 'behind'} this clock, "
            f"more than the {tolerance:g} seconds allowed",
        )
