"""Stand-ins for SendGrid's and Mailgun's send APIs, reading each request as the API documents it.

``read_sendgrid`` and ``read_mailgun`` take a request apart (path, headers,
body) and raise ``Refusal`` with what the real API would answer to one it
would not take. ``StandIn`` serves one of them on loopback in a thread of its
own (a ``Receiver``), for the engine as a subprocess.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any, Literal
from urllib.parse import parse_qs

from aiohttp import BasicAuth, web

from tests.support.receiver import Received, Receiver

SENDGRID_KEY = "SG.test-key.0123456789abcdefghijklmnopqrstuvwxyz"
MAILGUN_KEY = "key-0123456789abcdef0123456789abcdef"
MAILGUN_DOMAIN = "mg.ownly.test"


class Refusal(Exception):
    """A request the API would not take: the status and body it answers."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body


def _headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def _sendgrid_error(status: int, message: str, where: str | None = None) -> Refusal:
    error: dict[str, Any] = {"message": message}
    if where is not None:
        error["field"] = where
    return Refusal(status, json.dumps({"errors": [error]}))


def read_sendgrid(
    path: str, headers: Mapping[str, str], body: bytes, key: str = SENDGRID_KEY
) -> dict[str, Any]:
    """The v3 Mail Send document of a ``POST /v3/mail/send``."""
    given = _headers(headers)
    if path != "/v3/mail/send":
        raise _sendgrid_error(404, f"no such endpoint {path}")
    if given.get("authorization") != f"Bearer {key}":
        raise _sendgrid_error(401, "The provided authorization grant is invalid")
    if given.get("content-type", "").split(";")[0] != "application/json":
        raise _sendgrid_error(415, "Content-Type should be application/json")
    try:
        document = json.loads(body)
    except ValueError:
        raise _sendgrid_error(400, "Bad Request") from None
    personalizations = document.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        raise _sendgrid_error(400, "The personalizations field is required", "personalizations")
    first = personalizations[0]
    to = first.get("to")
    if not isinstance(to, list) or not to or not all(isinstance(t.get("email"), str) for t in to):
        raise _sendgrid_error(400, "Does not contain a valid address.", "personalizations.0.to")
    if not isinstance(first.get("custom_args", {}).get("ownly_email_id"), str):
        raise _sendgrid_error(400, "no ownly_email_id", "personalizations.0.custom_args")
    if not isinstance(document.get("from", {}).get("email"), str):
        raise _sendgrid_error(400, "The from email does not contain a valid address.", "from")
    if not isinstance(document.get("subject"), str):
        raise _sendgrid_error(400, "The subject is required.", "subject")
    content = document.get("content")
    if not isinstance(content, list) or not content:
        raise _sendgrid_error(400, "Unless a template is given, content is required.", "content")
    return dict(document)


def read_mailgun(
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    key: str = MAILGUN_KEY,
    domain: str = MAILGUN_DOMAIN,
) -> dict[str, list[str]]:
    """The form fields of a ``POST /v3/<domain>/messages``."""
    given = _headers(headers)
    if path != f"/v3/{domain}/messages":
        raise Refusal(404, json.dumps({"message": f"Domain not found: {path}"}))
    try:
        auth = BasicAuth.decode(given.get("authorization", ""))
    except ValueError:
        auth = None
    if auth is None or (auth.login, auth.password) != ("api", key):
        raise Refusal(401, "Forbidden")
    if given.get("content-type", "").split(";")[0] != "application/x-www-form-urlencoded":
        raise Refusal(400, json.dumps({"message": "expected a form"}))
    form = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
    for name in ("from", "to", "subject", "v:ownly_email_id"):
        if not form.get(name):
            raise Refusal(400, json.dumps({"message": f"'{name}' parameter is missing"}))
    if not form.get("text") and not form.get("html"):
        raise Refusal(400, json.dumps({"message": "Need at least one of 'text' or 'html'"}))
    return form


# A forced answer: status, body, headers.
Forced = tuple[int, str, dict[str, str]]


@dataclass(frozen=True)
class Call:
    """One request the stand-in took apart, and what it answered."""

    email_id: str
    recipient: str
    status: int
    message_id: str | None
    request: Mapping[str, Any]


@dataclass
class StandIn:
    """SendGrid's or Mailgun's send API on 127.0.0.1.

    A request of the documented shape is accepted with a message id of its own
    (SendGrid's ``X-Message-Id``, Mailgun's ``id``), unless ``answers`` holds
    another answer for its recipient. A request of another shape is refused as
    the API would, and kept in ``refusals``.
    """

    api: Literal["sendgrid", "mailgun"]
    answers: dict[str, Forced] = field(default_factory=dict)  # by recipient address
    calls: list[Call] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.receiver = Receiver(self._answer)

    @property
    def url(self) -> str:
        return self.receiver.url

    def __enter__(self) -> StandIn:
        self.receiver.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.receiver.__exit__(*exc)

    def calls_for(self, email_id: str) -> list[Call]:
        with self._lock:
            return [call for call in self.calls if call.email_id == email_id]

    def _answer(self, received: Received, nth: int) -> web.StreamResponse:
        read: Callable[[str, Mapping[str, str], bytes], Any]
        read = read_sendgrid if self.api == "sendgrid" else read_mailgun
        try:
            request = read(received.path, received.headers, received.body)
        except Refusal as refusal:
            with self._lock:
                self.refusals.append(refusal)
            return web.Response(status=refusal.status, text=refusal.body)
        if self.api == "sendgrid":
            email_id = request["personalizations"][0]["custom_args"]["ownly_email_id"]
            recipient = request["personalizations"][0]["to"][0]["email"]
        else:
            email_id = request["v:ownly_email_id"][0]
            recipient = parseaddr(request["to"][0])[1]
        forced = self.answers.get(recipient)
        message_id: str | None = None
        if forced is not None:
            status, body, headers = forced
            response = web.Response(status=status, text=body, headers=headers)
        elif self.api == "sendgrid":
            status, message_id = 202, f"sg-{nth:04d}.{email_id[-8:]}"
            response = web.Response(status=status, headers={"X-Message-Id": message_id})
        else:
            status, message_id = 200, f"<2026112612.{nth}.{email_id[-8:]}@{MAILGUN_DOMAIN}>"
            response = web.json_response({"id": message_id, "message": "Queued. Thank you."})
        with self._lock:
            self.calls.append(Call(email_id, recipient, status, message_id, request))
        return response
