"""Mailgun's Messages API: one form POST per email.

Mailgun answers 200 once it has queued the message, with its id (``<...>``)
in the JSON body. The email's ``email_id`` travels as the user variable
``ownly_email_id``, which Mailgun repeats in every event about the message.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx

from connectors.email.api import Answer, http_error, post
from connectors.email.base import Sent
from connectors.email.message import EMAIL_ID_HEADER, OutgoingEmail

__all__ = ["MailgunProvider"]


class MailgunProvider:
    """Sends through Mailgun's ``POST /v3/{domain}/messages``.

    Args:
        client: the shared HTTP client; the caller owns and closes it.
        api_key: the API key, sent as HTTP Basic ``api:<key>`` and nowhere else.
        domain: the sending domain configured at Mailgun.
        base_url: the API's origin: ``https://api.eu.mailgun.net`` for the EU
            region, a stand-in's in tests.
        name: the provider's configured name.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        api_key: str,
        domain: str,
        *,
        base_url: str = "https://api.mailgun.net",
        name: str = "mailgun",
    ) -> None:
        self._client = client
        self._api_key = api_key
        self._url = f"{base_url.rstrip('/')}/v3/{quote(domain, safe='')}/messages"
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"MailgunProvider(name={self._name!r}, url={self._url!r})"

    async def send(self, email: OutgoingEmail) -> Sent:
        """POST the email once.

        Raises:
            SendError: see ``connectors.email.api`` for what is permanent.
        """
        secrets = [self._api_key, f"api:{self._api_key}"]
        answer = await post(
            self._client,
            self._name,
            self._url,
            secrets=secrets,
            data=form(email),
            auth=httpx.BasicAuth("api", self._api_key),
        )
        if not 200 <= answer.status < 300:
            raise http_error(self._name, answer, _messages(answer), secrets)
        document = answer.json()
        given = document.get("id") if isinstance(document, dict) else None
        return Sent(
            provider_message_id=given if isinstance(given, str) else None,
            detail={"status": answer.status},
        )

    async def close(self) -> None:
        """Nothing to let go of: the client is the caller's."""


def form(email: OutgoingEmail) -> dict[str, str]:
    """The form fields for an email."""
    fields = {"from": email.sender, "to": email.to, "subject": email.subject}
    if email.text:
        fields["text"] = email.text
    if email.html:
        fields["html"] = email.html
    if email.reply_to is not None:
        fields["h:Reply-To"] = email.reply_to
    fields["h:Message-Id"] = email.message_id
    for name, value in email.headers:
        fields[f"h:{name}"] = value
    fields[f"h:{EMAIL_ID_HEADER}"] = email.email_id
    fields["v:ownly_email_id"] = email.email_id
    if email.category is not None:
        fields["o:tag"] = email.category
    return fields


def _messages(answer: Answer) -> list[str]:
    document = answer.json()
    message = document.get("message") if isinstance(document, dict) else None
    return [message] if isinstance(message, str) else []
