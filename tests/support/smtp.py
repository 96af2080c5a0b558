"""An SMTP server on loopback (aiosmtpd, on a thread of its own) that keeps what it receives."""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.process import free_port


@dataclass(frozen=True)
class Login:
    """An aiosmtpd authenticator that takes one user and password."""

    user: str
    password: str

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            self.user.encode(),
            self.password.encode(),
        )
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)


@dataclass(frozen=True)
class Session:
    """How a message came: the user it logged in as, and whether over TLS."""

    login: bytes | None
    tls: bool


@dataclass
class SmtpSink:
    """Keeps each message and its session; answers ``451`` to the first ``fail_first``
    RCPTs and ``550`` to the addresses in ``refuse``. While ``answering`` is clear, a
    message is kept but not answered: the sender cannot know it arrived."""

    fail_first: int = 0
    refuse: set[str] = field(default_factory=set)
    answering: threading.Event = field(default_factory=threading.Event)
    messages: list[EmailMessage] = field(default_factory=list)
    sessions: list[Session] = field(default_factory=list)  # one per message
    connections: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.answering.set()

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        with self._lock:
            self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        with self._lock:
            if self.fail_first > 0:
                self.fail_first -= 1
                return "451 4.3.0 try again later"
        if address in self.refuse:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        with self._lock:
            self.messages.append(message)  # type: ignore[arg-type]
            self.sessions.append(Session(login, session.ssl is not None))
        # Set from the test's thread, not this loop's: polled, not awaited.
        while not self.answering.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        return "250 2.0.0 Ok: queued"

    def arrival(self, email_id: str, timeout: float = 15.0) -> tuple[EmailMessage, Session]:
        """The message of the email ``email_id`` once it arrives, and its session."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for message, session in zip(self.messages, self.sessions, strict=True):
                    if message["X-Ownly-Email-Id"] == email_id:
                        return message, session
            time.sleep(0.02)
        raise AssertionError(f"{email_id} did not arrive")

    def wait_for(self, count: int, timeout: float = 20.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.02)
        raise AssertionError(f"{len(self.messages)} messages arrived, not {count}")


class SmtpServer:
    """``SmtpSink`` served on 127.0.0.1 at ``port``, in a context manager."""

    def __init__(self, sink: SmtpSink | None = None, **server_kwargs: Any) -> None:
        self.sink = sink or SmtpSink()
        self.port = free_port()
        self._controller = Controller(
            self.sink, hostname="127.0.0.1", port=self.port, **server_kwargs
        )

    def __enter__(self) -> SmtpServer:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()
