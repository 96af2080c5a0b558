"""The HTTP providers against aiohttp stand-ins of SendGrid and Mailgun on 127.0.0.1 that
check each request as the API documents it, and the outbox in a real directory."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from connectors.email import (
    EMAIL_ID_HEADER,
    EmailProvider,
    MailgunProvider,
    OutboxProvider,
    SendError,
    SendGridProvider,
    Sent,
)
from tests.support.outgoing import UNSUBSCRIBE, assert_no_secret, make_email, read
from tests.support.process import closed_port
from tests.support.providers import (
    MAILGUN_DOMAIN,
    MAILGUN_KEY,
    SENDGRID_KEY,
    Refusal,
    read_mailgun,
    read_sendgrid,
)
from tests.support.tls import Certificate

# -- SendGrid and Mailgun stand-ins ---------------------------------------------------------------


@dataclass
class StandIn:
    url: str
    received: list[Any] = field(default_factory=list)
    # the next answer, instead of the usual one: (status, body, headers)
    answer: tuple[int, str, dict[str, str]] | None = None
    hold: asyncio.Event | None = None


def forced(state: StandIn, request: web.Request) -> web.Response | None:
    if state.answer is None:
        return None
    status, body, headers = state.answer
    # A careless API that echoes the credentials it was given.
    body = body.replace("{authorization}", request.headers.get("Authorization", ""))
    return web.Response(status=status, text=body, headers=headers)


@asynccontextmanager
async def stand_in(routes: Callable[[StandIn], web.Application]) -> AsyncIterator[StandIn]:
    state = StandIn(url="")
    server = TestServer(routes(state), host="127.0.0.1")
    await server.start_server()
    state.url = str(server.make_url("")).rstrip("/")
    try:
        yield state
    finally:
        if state.hold is not None:
            state.hold.set()
        await server.close()


async def _read(request: web.Request, read: Callable[[str, Mapping[str, str], bytes], Any]) -> Any:
    """What ``read`` makes of the request, or the answer the API gives one it refuses."""
    try:
        return read(request.path, request.headers, await request.read())
    except Refusal as refusal:
        return web.Response(status=refusal.status, text=refusal.body)


def sendgrid_app(state: StandIn) -> web.Application:
    async def mail_send(request: web.Request) -> web.Response:
        if state.hold is not None:
            await state.hold.wait()
        document = await _read(request, read_sendgrid)
        if isinstance(document, web.Response):
            return document
        state.received.append(document)
        answer = forced(state, request)
        if answer is not None:
            return answer
        return web.Response(status=202, headers={"X-Message-Id": "sg-Xm3ss4ge1d"})

    app = web.Application()
    app.router.add_post("/v3/mail/send", mail_send)
    return app


def mailgun_app(state: StandIn) -> web.Application:
    async def messages(request: web.Request) -> web.Response:
        if state.hold is not None:
            await state.hold.wait()
        form = await _read(request, read_mailgun)
        if isinstance(form, web.Response):
            return form
        state.received.append(form)
        answer = forced(state, request)
        if answer is not None:
            return answer
        return web.json_response(
            {"id": "<20261126120000.1.ABC@mg.ownly.test>", "message": "Queued. Thank you."}
        )

    app = web.Application()
    app.router.add_post(f"/v3/{MAILGUN_DOMAIN}/messages", messages)
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


async def test_sendgrid_request_shape_and_answer(client: httpx.AsyncClient) -> None:
    outgoing = make_email()
    async with stand_in(sendgrid_app) as api:
        provider = SendGridProvider(client, SENDGRID_KEY, base_url=api.url)
        sent = await provider.send(outgoing)
    assert sent == Sent("sg-Xm3ss4ge1d", {"status": 202})
    ids = {"ownly_email_id": outgoing.email_id}
    assert api.received == [
        {
            "personalizations": [
                {
                    "to": [{"email": "jane@investor.example", "name": "Jane Investor"}],
                    "custom_args": ids,
                }
            ],
            "from": {"email": "hello@ownly.com", "name": "Zoë at OWNLY"},
            "reply_to": {"email": "support@ownly.com", "name": "Support"},
            "subject": "Votre reçu — 25 000,00 €",
            "content": [
                {"type": "text/plain", "value": "Merci, Jane.\n"},
                {"type": "text/html", "value": "<p>Merci, Jane.</p>"},
            ],
            "headers": {
                "List-Unsubscribe": UNSUBSCRIBE,
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                "Message-ID": outgoing.message_id,
                EMAIL_ID_HEADER: outgoing.email_id,
            },
            "categories": ["receipts"],
            "custom_args": ids,
        }
    ]


async def test_sendgrid_minimal_email(client: httpx.AsyncClient) -> None:
    outgoing = make_email(
        sender="hello@ownly.com", to="jane@investor.example", reply_to=None, category=None,
        html=None, headers=(),
    )  # fmt: skip
    async with stand_in(sendgrid_app) as api:
        await SendGridProvider(client, SENDGRID_KEY, base_url=api.url).send(outgoing)
    [body] = api.received
    assert body["from"] == {"email": "hello@ownly.com"}
    assert body["personalizations"][0]["to"] == [{"email": "jane@investor.example"}]
    assert body["content"] == [{"type": "text/plain", "value": "Merci, Jane.\n"}]
    assert "reply_to" not in body
    assert "categories" not in body


async def test_mailgun_request_shape_and_answer(client: httpx.AsyncClient) -> None:
    outgoing = make_email()
    async with stand_in(mailgun_app) as api:
        provider = MailgunProvider(client, MAILGUN_KEY, MAILGUN_DOMAIN, base_url=api.url)
        sent = await provider.send(outgoing)
    assert sent == Sent("<20261126120000.1.ABC@mg.ownly.test>", {"status": 200})
    assert api.received == [
        {
            "from": ["Zoë at OWNLY <hello@ownly.com>"],
            "to": ["Jane Investor <jane@investor.example>"],
            "subject": ["Votre reçu — 25 000,00 €"],
            "text": ["Merci, Jane.\n"],
            "html": ["<p>Merci, Jane.</p>"],
            "h:Reply-To": ["Support <support@ownly.com>"],
            "h:Message-Id": [outgoing.message_id],
            "h:List-Unsubscribe": [UNSUBSCRIBE],
            "h:List-Unsubscribe-Post": ["List-Unsubscribe=One-Click"],
            f"h:{EMAIL_ID_HEADER}": [outgoing.email_id],
            "v:ownly_email_id": [outgoing.email_id],
            "o:tag": ["receipts"],
        }
    ]


SENDGRID_400 = json.dumps(
    {"errors": [{"message": "Does not contain a valid address.", "field": "personalizations.0.to"}]}
)
MAILGUN_400 = json.dumps({"message": "'to' parameter is not a valid address"})

# (status, body, headers, reason, permanent); "{authorization}" is replaced by what the client sent.
FAILURES = [
    (503, "Service Unavailable {authorization}", {}, "http_503", False),
    (500, "oops", {}, "http_500", False),
    (429, "too many requests", {"Retry-After": "7"}, "http_429", False),
    (408, "request timeout", {}, "http_408", False),
    (404, "not found", {}, "http_404", False),
    (403, "forbidden {authorization}", {}, "auth", False),
    (413, "payload too large", {}, "http_413", True),
    (422, "unprocessable {authorization}", {}, "http_422", True),
]


def http_providers(
    client: httpx.AsyncClient, sendgrid_url: str, mailgun_url: str
) -> Iterator[tuple[EmailProvider, str]]:
    yield SendGridProvider(client, SENDGRID_KEY, base_url=sendgrid_url), SENDGRID_KEY
    yield MailgunProvider(client, MAILGUN_KEY, MAILGUN_DOMAIN, base_url=mailgun_url), MAILGUN_KEY


@pytest.mark.parametrize(("status", "body", "headers", "reason", "permanent"), FAILURES)
async def test_http_failures_are_classified(
    client: httpx.AsyncClient,
    status: int,
    body: str,
    headers: dict[str, str],
    reason: str,
    permanent: bool,
) -> None:
    async with stand_in(sendgrid_app) as sendgrid, stand_in(mailgun_app) as mailgun:
        sendgrid.answer = mailgun.answer = (status, body, headers)
        for provider, key in http_providers(client, sendgrid.url, mailgun.url):
            with pytest.raises(SendError) as caught:
                await provider.send(make_email())
            error = caught.value
            assert (error.provider, error.reason, error.permanent) == (
                provider.name,
                reason,
                permanent,
            )
            assert error.detail["status"] == status
            assert str(error).startswith(f"{provider.name} answered {status}: ")
            assert_no_secret(error, key)
            if "Retry-After" in headers:
                assert error.detail["retry_after"] == "7"


@pytest.mark.parametrize(
    ("app", "body", "expected"),
    [
        (sendgrid_app, SENDGRID_400, "personalizations.0.to: Does not contain a valid address."),
        (mailgun_app, MAILGUN_400, "'to' parameter is not a valid address"),
    ],
)
async def test_http_400_is_permanent_with_the_providers_message(
    client: httpx.AsyncClient, app: Callable[[StandIn], web.Application], body: str, expected: str
) -> None:
    async with stand_in(app) as api:
        api.answer = (400, body, {"Content-Type": "application/json"})
        provider: EmailProvider
        if app is sendgrid_app:
            provider = SendGridProvider(client, SENDGRID_KEY, base_url=api.url)
        else:
            provider = MailgunProvider(client, MAILGUN_KEY, MAILGUN_DOMAIN, base_url=api.url)
        with pytest.raises(SendError) as caught:
            await provider.send(make_email())
    assert (caught.value.reason, caught.value.permanent) == ("http_400", True)
    assert caught.value.detail["errors"] == [expected]
    assert str(caught.value) == f"{provider.name} answered 400: {expected}"


async def test_http_a_wrong_key_is_an_auth_failure(client: httpx.AsyncClient) -> None:
    async with stand_in(sendgrid_app) as sendgrid, stand_in(mailgun_app) as mailgun:
        providers: list[tuple[EmailProvider, str]] = [
            (SendGridProvider(client, "SG.wrong-key", base_url=sendgrid.url), "SG.wrong-key"),
            (
                MailgunProvider(client, "key-wrong", MAILGUN_DOMAIN, base_url=mailgun.url),
                "key-wrong",
            ),
        ]
        for provider, key in providers:
            with pytest.raises(SendError) as caught:
                await provider.send(make_email())
            assert (caught.value.reason, caught.value.permanent) == ("auth", False)
            assert caught.value.detail["status"] == 401
            assert_no_secret(caught.value, key)
    assert sendgrid.received == mailgun.received == []


async def test_http_an_echoed_key_is_redacted(client: httpx.AsyncClient) -> None:
    async with stand_in(sendgrid_app) as sendgrid, stand_in(mailgun_app) as mailgun:
        sendgrid.answer = mailgun.answer = (400, "you sent {authorization} " + "x" * 5000, {})
        for provider, key in http_providers(client, sendgrid.url, mailgun.url):
            with pytest.raises(SendError) as caught:
                await provider.send(make_email())
            assert "<redacted>" in caught.value.detail["body"]
            assert len(caught.value.detail["body"]) <= 2048
            assert_no_secret(caught.value, key)


async def test_http_connection_refused(client: httpx.AsyncClient) -> None:
    probe, port = closed_port()
    with probe:
        url = f"http://127.0.0.1:{port}"
        for provider, key in http_providers(client, url, url):
            with pytest.raises(SendError) as caught:
                await provider.send(make_email())
            assert (caught.value.reason, caught.value.permanent) == ("refused", False)
            assert_no_secret(caught.value, key)


async def test_http_timeout() -> None:
    async with (
        httpx.AsyncClient(timeout=0.2) as client,
        stand_in(sendgrid_app) as sendgrid,
        stand_in(mailgun_app) as mailgun,
    ):
        sendgrid.hold, mailgun.hold = asyncio.Event(), asyncio.Event()
        for provider, key in http_providers(client, sendgrid.url, mailgun.url):
            with pytest.raises(SendError) as caught:
                await provider.send(make_email())
            assert (caught.value.reason, caught.value.permanent) == ("timeout", False)
            assert_no_secret(caught.value, key)


async def test_http_untrusted_certificate_is_a_tls_failure(certificate: Certificate) -> None:
    async def never(request: web.Request) -> web.Response:
        raise AssertionError("no request gets through")

    app = web.Application()
    app.router.add_post("/v3/mail/send", never)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=certificate.server_context())
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with httpx.AsyncClient(timeout=5) as client:  # the system's trust store
            provider = SendGridProvider(client, SENDGRID_KEY, base_url=f"https://127.0.0.1:{port}")
            with pytest.raises(SendError) as caught:
                await provider.send(make_email())
    finally:
        await runner.cleanup()
    assert (caught.value.reason, caught.value.permanent) == ("tls", False)


# -- the outbox ---------------------------------------------------------------------------------


async def test_outbox_writes_a_parseable_file(tmp_path: Path) -> None:
    outgoing = make_email()
    provider = OutboxProvider(tmp_path / "outbox" / "dev")
    sent = await provider.send(outgoing)
    path = tmp_path / "outbox" / "dev" / f"{outgoing.email_id}.eml"
    assert sent == Sent(outgoing.message_id, {"path": str(path)})
    assert path.read_bytes() == outgoing.as_bytes()
    message = read(path.read_bytes())
    assert message["Message-ID"] == outgoing.message_id
    assert message["Subject"] == "Votre reçu — 25 000,00 €"
    await provider.close()


async def test_outbox_a_retry_overwrites_the_same_file(tmp_path: Path) -> None:
    outgoing = make_email()
    provider = OutboxProvider(tmp_path)
    await provider.send(outgoing)
    path = tmp_path / f"{outgoing.email_id}.eml"
    path.write_bytes(b"half a mess")
    await provider.send(outgoing)
    assert path.read_bytes() == outgoing.as_bytes()
    assert os.listdir(tmp_path) == [path.name]  # no temporary file is left


async def test_outbox_an_unwritable_directory_is_an_io_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file")
    provider = OutboxProvider(blocker / "outbox", name="dev-outbox")
    with pytest.raises(SendError) as caught:
        await provider.send(make_email())
    error = caught.value
    assert (error.provider, error.reason, error.permanent) == ("dev-outbox", "io", False)
