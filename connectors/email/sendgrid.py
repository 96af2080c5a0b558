"""SendGrid's v3 Mail Send API: one POST of JSON per email.

SendGrid answers 202 once it has queued the message, with its id in
``X-Message-Id``. The email's ``email_id`` travels as the custom argument
``ownly_email_id``, which SendGrid repeats in every event it posts back.
"""

from __future__ import annotations

from email.headerregistry import Address
from typing import Any

import httpx

from connectors.email.api import Answer, http_error, post
from connectors.email.base import Sent
from connectors.email.message import EMAIL_ID_HEADER, OutgoingEmail

__all__ = ["SendGridProvider"]


class SendGridProvider:
    """Sends through SendGrid's ``POST /v3/mail/send``.

    Args:
        client: the shared HTTP client; the caller owns and closes it.
        api_key: the API key, sent as ``Authorization: Bearer <key>`` and nowhere else.
        base_url: the API's origin; a stand-in's in tests.
        name: the provider's configured name.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        api_key: str,
        *,
        base_url: str = "https://api.sendgrid.com",
        name: str = "sendgrid",
    ) -> None:
        self._client = client
        self._api_key = api_key
        self._url = base_url.rstrip("/") + "/v3/mail/send"
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"SendGridProvider(name={self._name!r}, url={self._url!r})"

    async def send(self, email: OutgoingEmail) -> Sent:
        """POST the email once.

        Raises:
            SendError: see ``connectors.email.api`` for what is permanent.
        """
        answer = await post(
            self._client,
            self._name,
            self._url,
            secrets=[self._api_key],
            json=payload(email),
            headers={"Authorization": f"Bearer {self._api_key}"},
        )
        if not 200 <= answer.status < 300:
            raise http_error(self._name, answer, _messages(answer), [self._api_key])
        return Sent(
            provider_message_id=answer.headers.get("X-Message-Id"),
            detail={"status": answer.status},
        )

    async def close(self) -> None:
        """Nothing to let go of: the client is the caller's."""


def payload(email: OutgoingEmail) -> dict[str, Any]:
    """The v3 Mail Send body for an email."""
    custom_args = {"ownly_email_id": email.email_id}
    content = []
    if email.text:  # SendGrid requires text/plain first
        content.append({"type": "text/plain", "value": email.text})
    if email.html:
        content.append({"type": "text/html", "value": email.html})
    headers = dict(email.headers)
    headers["Message-ID"] = email.message_id
    headers[EMAIL_ID_HEADER] = email.email_id
    body: dict[str, Any] = {
        "personalizations": [{"to": [_address(email.to_address)], "custom_args": custom_args}],
        "from": _address(email.sender_address),
        "subject": email.subject,
        "content": content,
        "headers": headers,
        "custom_args": custom_args,
    }
    reply_to = email.reply_to_address
    if reply_to is not None:
        body["reply_to"] = _address(reply_to)
    if email.category is not None:
        body["categories"] = [email.category]
    return body


def _address(address: Address) -> dict[str, str]:
    given = {"email": address.addr_spec}
    if address.display_name:
        given["name"] = address.display_name
    return given


def _messages(answer: Answer) -> list[str]:
    document = answer.json()
    errors = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(errors, list):
        return []
    messages = []
    for error in errors[:10]:
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            where = error.get("field")
            messages.append(f"{where}: {error['message']}" if where else error["message"])
    return messages
