"""The SMTP provider against aiosmtpd on 127.0.0.1: plain, STARTTLS with AUTH, and implicit
TLS with a certificate made here; refusals, failures, and its pool of connections."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, LoginPassword, Session

from connectors.email import (
    EMAIL_ID_HEADER,
    SendError,
    Sent,
    SmtpProvider,
)
from tests.support.outgoing import UNSUBSCRIBE, assert_no_secret, make_email, read
from tests.support.process import closed_port
from tests.support.smtp import Login
from tests.support.tls import Certificate

USER, PASSWORD = "mailer", "s3cret-Passw0rd"


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.002)
    raise AssertionError("condition not reached")


# -- an SMTP server: aiosmtpd's protocol on a port of our own -------------------------------------


@dataclass
class Delivered:
    mail_from: str | None
    rcpt_tos: list[str]
    content: bytes | None
    peer: Any
    login: bytes | None
    tls: bool


@dataclass
class Mailbox:
    """aiosmtpd's handler: keeps what DATA delivers; ``rcpt_reply`` refuses recipients."""

    delivered: list[Delivered] = field(default_factory=list)
    rcpt_reply: str | None = None
    data_reply: str | None = None
    quits: int = 0

    async def handle_RCPT(
        self, server: SMTPServer, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if self.rcpt_reply is not None:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        if self.data_reply is not None:
            return self.data_reply
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        self.delivered.append(
            Delivered(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                envelope.original_content,
                session.peer,
                login,
                server.transport is not None
                and server.transport.get_extra_info("sslcontext") is not None,
            )
        )
        return f"250 2.0.0 Ok: queued as Q{len(self.delivered)}"

    async def handle_QUIT(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.quits += 1
        return "221 Bye"


@dataclass
class SmtpServer:
    port: int
    mailbox: Mailbox
    protocols: list[SMTPServer]

    @property
    def connections(self) -> int:
        return len(self.protocols)


check_login = Login(USER, PASSWORD)


@asynccontextmanager
async def smtp_server(
    *, listen_tls: ssl.SSLContext | None = None, **options: Any
) -> AsyncIterator[SmtpServer]:
    loop = asyncio.get_running_loop()
    mailbox = Mailbox()
    protocols: list[SMTPServer] = []

    def factory() -> SMTPServer:
        protocol = SMTPServer(mailbox, hostname="mx.ownly.test", loop=loop, **options)
        protocols.append(protocol)
        return protocol

    server = await loop.create_server(factory, "127.0.0.1", 0, ssl=listen_tls)
    try:
        yield SmtpServer(server.sockets[0].getsockname()[1], mailbox, protocols)
    finally:
        server.close()
        for protocol in protocols:
            if protocol.transport is not None:
                protocol.transport.close()
        await server.wait_closed()


@asynccontextmanager
async def smtp_provider(port: int, **options: Any) -> AsyncIterator[SmtpProvider]:
    settings: dict[str, Any] = {
        "security": "none",
        "username": None,
        "password": None,
        "timeout": 5,
        "local_hostname": "app.ownly.test",
    }
    settings.update(options)
    provider = SmtpProvider("127.0.0.1", port, **settings)
    try:
        yield provider
    finally:
        await provider.close()


async def test_smtp_plain_send() -> None:
    outgoing = make_email(text="Merci.\n.\n..a line that starts with dots\n.\n")
    async with smtp_server() as server, smtp_provider(server.port) as provider:
        sent = await provider.send(outgoing)
    assert sent == Sent(outgoing.message_id, {"reply": "250 2.0.0 Ok: queued as Q1"})
    [delivered] = server.mailbox.delivered
    assert delivered.mail_from == "hello@ownly.com"
    assert delivered.rcpt_tos == ["jane@investor.example"]
    assert delivered.content == outgoing.as_bytes()
    assert not delivered.tls
    message = read(delivered.content)
    assert message["Message-ID"] == outgoing.message_id
    assert message["Subject"] == "Votre reçu — 25 000,00 €"
    assert message[EMAIL_ID_HEADER] == outgoing.email_id
    assert message["List-Unsubscribe"] == UNSUBSCRIBE


async def test_smtp_starttls_and_auth(certificate: Certificate) -> None:
    async with (
        smtp_server(
            tls_context=certificate.server_context(),
            require_starttls=True,
            auth_required=True,
            authenticator=check_login,
        ) as server,
        smtp_provider(
            server.port,
            security="starttls",
            username=USER,
            password=PASSWORD,
            tls_context=certificate.client_context(),
        ) as provider,
    ):
        await provider.send(make_email())
    [delivered] = server.mailbox.delivered
    assert delivered.login == USER.encode()
    assert delivered.tls


async def test_smtp_implicit_tls(certificate: Certificate) -> None:
    async with (
        smtp_server(listen_tls=certificate.server_context()) as server,
        smtp_provider(
            server.port, security="tls", tls_context=certificate.client_context()
        ) as provider,
    ):
        await provider.send(make_email())
    [delivered] = server.mailbox.delivered
    assert delivered.tls


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_smtp_untrusted_certificate_is_a_tls_failure(
    certificate: Certificate, security: str
) -> None:
    listen_tls = certificate.server_context() if security == "tls" else None
    starttls = {} if security == "tls" else {"tls_context": certificate.server_context()}
    async with (
        smtp_server(listen_tls=listen_tls, **starttls) as server,
        smtp_provider(server.port, security=security) as provider,  # the system's trust store
    ):
        with pytest.raises(SendError) as caught:
            await provider.send(make_email())
    assert (caught.value.reason, caught.value.permanent) == ("tls", False)
    assert server.mailbox.delivered == []


async def test_smtp_starttls_required_but_not_offered() -> None:
    async with smtp_server() as server, smtp_provider(server.port, security="starttls") as provider:
        with pytest.raises(SendError) as caught:
            await provider.send(make_email())
    assert (caught.value.reason, caught.value.permanent) == ("tls", False)


async def test_smtp_wrong_password_is_an_auth_failure(certificate: Certificate) -> None:
    wrong = "wr0ng-Passw0rd"
    async with (
        smtp_server(
            tls_context=certificate.server_context(),
            require_starttls=True,
            auth_required=True,
            authenticator=check_login,
        ) as server,
        smtp_provider(
            server.port,
            security="starttls",
            username=USER,
            password=wrong,
            tls_context=certificate.client_context(),
        ) as provider,
    ):
        with pytest.raises(SendError) as caught:
            await provider.send(make_email())
    error = caught.value
    assert (error.provider, error.reason, error.permanent) == ("smtp", "auth", False)
    assert error.detail["code"] == 535
    assert_no_secret(error, wrong)
    assert server.mailbox.delivered == []


@pytest.mark.parametrize(
    ("reply", "reason", "permanent"),
    [
        ("550 5.1.1 no such user", "smtp_550", True),
        ("553 5.1.3 bad destination mailbox address syntax", "smtp_553", True),
        ("451 4.3.0 try again later", "smtp_451", False),
        ("452 4.2.2 mailbox full", "smtp_452", False),
    ],
)
async def test_smtp_refused_recipient(reply: str, reason: str, permanent: bool) -> None:
    async with smtp_server() as server, smtp_provider(server.port) as provider:
        server.mailbox.rcpt_reply = reply
        with pytest.raises(SendError) as caught:
            await provider.send(make_email())
        assert (caught.value.reason, caught.value.permanent) == (reason, permanent)
        assert caught.value.detail == {"code": int(reply[:3]), "reply": reply}
        assert reply in str(caught.value)
        assert provider.idle == 0  # the connection that failed is not kept
        server.mailbox.rcpt_reply = None
        await provider.send(make_email())
    assert server.connections == 2
    assert len(server.mailbox.delivered) == 1


@pytest.mark.parametrize(
    ("reply", "reason", "permanent"),
    [
        ("554 5.7.1 message refused as spam", "smtp_554", True),
        ("452 4.3.1 insufficient system storage", "smtp_452", False),
    ],
)
async def test_smtp_refused_message(reply: str, reason: str, permanent: bool) -> None:
    async with smtp_server() as server, smtp_provider(server.port) as provider:
        server.mailbox.data_reply = reply
        with pytest.raises(SendError) as caught:
            await provider.send(make_email())
    assert (caught.value.reason, caught.value.permanent) == (reason, permanent)
    assert caught.value.detail["reply"] == reply


async def test_smtp_a_login_the_server_requires_is_an_auth_failure(
    certificate: Certificate,
) -> None:
    async with (
        smtp_server(
            tls_context=certificate.server_context(),
            require_starttls=True,
            auth_required=True,
            authenticator=check_login,
        ) as server,
        smtp_provider(
            server.port, security="starttls", tls_context=certificate.client_context()
        ) as provider,  # no username configured
    ):
        with pytest.raises(SendError) as caught:
            await provider.send(make_email())
    assert (caught.value.reason, caught.value.permanent) == ("auth", False)
    assert caught.value.detail["code"] == 530
    assert server.mailbox.delivered == []


async def test_smtp_connection_refused() -> None:
    probe, port = closed_port()
    with probe:
        async with smtp_provider(port) as provider:
            with pytest.raises(SendError) as caught:
                await provider.send(make_email())
    assert (caught.value.reason, caught.value.permanent) == ("refused", False)
    assert f"127.0.0.1:{port}" in str(caught.value)


async def test_smtp_a_silent_server_times_out() -> None:
    release = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with smtp_provider(port, timeout=0.2) as provider:
            with pytest.raises(SendError) as caught:
                await provider.send(make_email())
    finally:
        release.set()
        server.close()
        await server.wait_closed()
    assert (caught.value.reason, caught.value.permanent) == ("timeout", False)


async def test_smtp_pool_reuses_at_most_pool_size_connections() -> None:
    async with smtp_server() as server, smtp_provider(server.port, pool_size=2) as provider:
        await asyncio.gather(*(provider.send(make_email(n)) for n in range(6)))
        for n in range(6, 9):
            await provider.send(make_email(n))
        assert provider.idle == 2
    assert server.connections == 2
    assert len(server.mailbox.delivered) == 9
    assert len({d.peer for d in server.mailbox.delivered}) == 2
    assert server.mailbox.quits == 2  # close() said goodbye on each


async def test_smtp_an_idle_connection_the_server_closed_is_replaced() -> None:
    async with smtp_server() as server, smtp_provider(server.port) as provider:
        await provider.send(make_email(1))
        assert provider.idle == 1
        transport = server.protocols[0].transport
        assert transport is not None
        transport.close()
        await until(lambda: provider.idle == 0)
        await provider.send(make_email(2))
    assert server.connections == 2
    assert len(server.mailbox.delivered) == 2


async def test_smtp_send_after_close_is_refused() -> None:
    async with smtp_server() as server, smtp_provider(server.port) as provider:
        await provider.close()
        with pytest.raises(SendError) as caught:
            await provider.send(make_email())
    assert (caught.value.reason, caught.value.permanent) == ("closed", False)
    assert server.mailbox.delivered == []
