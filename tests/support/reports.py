"""Event reports as SendGrid and Mailgun post them to a webhook, signed each its own way."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sendgrid.helpers.eventwebhook import EventWebhook

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"


@dataclass(frozen=True)
class SendGridSigner:
    """A Signed Event Webhook key pair (ECDSA P-256), made for the test."""

    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    @property
    def public_key(self) -> str:
        """The verification key as SendGrid's settings show it: base64 of the DER key."""
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    def headers(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """The signature headers for ``body``: over the timestamp, then the raw body."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        signature = self.key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            SIGNATURE_HEADER: base64.b64encode(signature).decode(),
            TIMESTAMP_HEADER: stamp,
            "Content-Type": "application/json",
        }

    def sendgrid_verifies(self, body: bytes, headers: dict[str, str]) -> bool:
        """Whether SendGrid's own library takes the signature, against this key."""
        verifier = EventWebhook(self.public_key)
        return bool(
            verifier.verify_signature(
                body.decode(), headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER]
            )
        )


def sendgrid_event(email_id: str, event: str, email: str, **fields: Any) -> dict[str, Any]:
    """One SendGrid event object about the email ``email_id``."""
    return {
        "email": email,
        "event": event,
        "sg_event_id": base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="),
        "sg_message_id": f"sg-{email_id[-8:]}.filter0001",
        "timestamp": int(time.time()),
        "ownly_email_id": email_id,
        **fields,
    }


def sendgrid_body(*events: dict[str, Any]) -> bytes:
    return json.dumps(list(events)).encode()


def mailgun_event(email_id: str, event: str, recipient: str, **fields: Any) -> dict[str, Any]:
    """One Mailgun ``event-data`` object about the email ``email_id``."""
    return {
        "id": uuid.uuid4().hex[:22],
        "event": event,
        "timestamp": float(int(time.time())),
        "recipient": recipient,
        "user-variables": {"ownly_email_id": email_id},
        "message": {"headers": {"message-id": f"{email_id[-8:]}@mg.ownly.test"}},
        **fields,
    }


def mailgun_signature(
    key: str, timestamp: int | None = None, token: str | None = None
) -> dict[str, str]:
    """A Mailgun ``signature`` block: hex HMAC-SHA256 of the timestamp and token."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    token = token or secrets.token_hex(25)
    digest = hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    return {"timestamp": stamp, "token": token, "signature": digest}


def mailgun_body(signature: dict[str, str], event: dict[str, Any]) -> bytes:
    return json.dumps({"signature": signature, "event-data": event}).encode()
