"""SMTP submission through a small pool of connected, authenticated clients.

At most ``pool_size`` connections are open at once, and each send holds one
for its whole transaction. A connection that met any error is closed, never
reused; an idle one the server has closed is replaced before use.

How a failure is classified::

    AUTH refused, or 530/534/535/538     not permanent, ``auth``: the account is wrong
    greeting, EHLO or STARTTLS refused   not permanent, ``smtp_<code>``: the server's state
    MAIL, RCPT or DATA answered 5xx      permanent, ``smtp_<code>``: this message is refused
    MAIL, RCPT or DATA answered 4xx      not permanent, ``smtp_<code>``
    refused, timed out, TLS, cut off     not permanent: ``refused``, ``timeout``, ``tls``,
                                         ``disconnected``
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Literal

import aiosmtplib

from connectors.email.base import SendError, Sent, caused_by_tls, redact
from connectors.email.message import OutgoingEmail

__all__ = ["Security", "SmtpProvider"]

Security = Literal["starttls", "tls", "none"]

_AUTH_CODES = frozenset({530, 534, 535, 538})
_QUIT_TIMEOUT = 5.0


class SmtpProvider:
    """Sends through an SMTP server, reusing up to ``pool_size`` connections.

    Args:
        host: the server's name or address.
        port: 587 for ``starttls``, 465 for ``tls``, 25 for a local relay.
        security: ``starttls`` (required, not opportunistic), ``tls`` (implicit TLS)
            or ``none``.
        username: logs in when given.
        password: the password for ``username``.
        pool_size: at most this many connections at once.
        timeout: seconds for connecting and for each command.
        tls_context: verifies the server; the system's trust store when None.
        local_hostname: the name given in EHLO; this machine's FQDN when None.
        name: the provider's configured name.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        security: Security,
        username: str | None,
        password: str | None,
        pool_size: int = 4,
        timeout: float = 30,
        tls_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
        name: str = "smtp",
    ) -> None:
        if security not in ("starttls", "tls", "none"):
            raise ValueError(f"security is starttls, tls or none, not {security!r}")
        if pool_size < 1:
            raise ValueError(f"pool_size must be at least 1, not {pool_size}")
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        self._host = host
        self._port = port
        self._security = security
        self._username = username
        self._password = password
        self._timeout = timeout
        self._tls_context = tls_context
        self._local_hostname = local_hostname
        self._name = name
        self._slots = asyncio.Semaphore(pool_size)
        self._idle: list[aiosmtplib.SMTP] = []  # a stack: the most recently used first
        self._closed = False

    @property
    def name(self) -> str:
        return self._name

    @property
    def idle(self) -> int:
        """Connections open and waiting for the next send."""
        return sum(1 for client in self._idle if client.is_connected)

    def __repr__(self) -> str:
        return (
            f"SmtpProvider(name={self._name!r}, host={self._host!r}, port={self._port}, "
            f"security={self._security!r})"
        )

    async def send(self, email: OutgoingEmail) -> Sent:
        """Hand the email to the server in one transaction: MAIL, RCPT, DATA.

        The envelope sender is the From address; the one recipient is ``to``.

        Raises:
            SendError: see the module's table for what is permanent.
        """
        if self._closed:
            raise SendError(self._name, "closed", f"{self._name} is closed", permanent=False)
        message = email.as_bytes()
        sender = email.sender_address.addr_spec
        recipient = email.to_address.addr_spec
        async with self._slots:
            client = await self._checkout()
            try:
                _, reply = await client.sendmail(sender, [recipient], message)
            except (aiosmtplib.SMTPException, OSError) as exc:
                client.close()
                raise self._send_error(exc) from exc
            except BaseException:
                client.close()
                raise
            self._checkin(client)
        return Sent(
            provider_message_id=email.message_id,
            detail={"reply": redact(f"250 {reply}", self._secrets())},
        )

    async def close(self) -> None:
        """QUIT every idle connection; one still sending is closed when it is done."""
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(_quit(client) for client in idle))

    async def _checkout(self) -> aiosmtplib.SMTP:
        while self._idle:
            client = self._idle.pop()
            if client.is_connected:
                return client
            client.close()
        client = aiosmtplib.SMTP(
            hostname=self._host,
            port=self._port,
            username=self._username,
            password=self._password,
            local_hostname=self._local_hostname,
            timeout=self._timeout,
            use_tls=self._security == "tls",
            start_tls=self._security == "starttls",
            tls_context=self._tls_context,
        )
        try:
            await client.connect()
        except (aiosmtplib.SMTPException, OSError) as exc:
            client.close()
            raise self._connect_error(exc) from exc
        except BaseException:
            client.close()
            raise
        return client

    def _checkin(self, client: aiosmtplib.SMTP) -> None:
        if self._closed or not client.is_connected:
            client.close()
        else:
            self._idle.append(client)

    def _connect_error(self, exc: Exception) -> SendError:
        where = f"{self._host}:{self._port}"
        if caused_by_tls(exc):
            return self._error("tls", f"TLS with {where} failed", exc)
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError) or (
            isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code in _AUTH_CODES
        ):
            return self._error("auth", f"{where} refused the login", exc)
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            return self._error(f"smtp_{exc.code}", f"{where} refused the session", exc)
        if isinstance(exc, TimeoutError):
            return self._error("timeout", f"{where} did not answer in time", exc)
        if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
            return self._error("disconnected", f"{where} closed the connection", exc)
        if isinstance(exc, aiosmtplib.SMTPConnectError | OSError):
            return self._error("refused", f"{where} could not be reached", exc)
        text = str(exc)
        if "STARTTLS" in text or "TLS" in text:
            return self._error("tls", f"{where} offers no STARTTLS", exc)
        if "AUTH" in text or "authentication" in text:
            return self._error("auth", f"{where} cannot log in", exc)
        return self._error("smtp", f"{where} failed", exc)

    def _send_error(self, exc: Exception) -> SendError:
        where = f"{self._host}:{self._port}"
        if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
            exc = exc.recipients[0]
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            if exc.code in _AUTH_CODES:
                return self._error("auth", f"{where} wants a login", exc)
            return self._error(
                f"smtp_{exc.code}",
                f"{where} answered",
                exc,
                permanent=500 <= exc.code < 600,
            )
        if caused_by_tls(exc):
            return self._error("tls", f"TLS with {where} failed", exc)
        if isinstance(exc, TimeoutError):
            return self._error("timeout", f"{where} did not answer in time", exc)
        if isinstance(exc, aiosmtplib.SMTPServerDisconnected | ConnectionError):
            return self._error("disconnected", f"{where} closed the connection", exc)
        if isinstance(exc, OSError):
            return self._error("network", f"the connection to {where} failed", exc)
        return self._error("smtp", f"{where} failed", exc)

    def _error(
        self, reason: str, what: str, exc: Exception, *, permanent: bool = False
    ) -> SendError:
        secrets = self._secrets()
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            reply = redact(f"{exc.code} {exc.message}", secrets)
            return SendError(
                self._name,
                reason,
                f"{self._name}: {what} {reply}",
                permanent=permanent,
                detail={"code": exc.code, "reply": reply},
            )
        said = redact(str(exc) or type(exc).__name__, secrets)
        return SendError(
            self._name,
            reason,
            f"{self._name}: {what}: {said}",
            permanent=permanent,
            detail={"error": type(exc).__name__},
        )

    def _secrets(self) -> list[str | None]:
        if not self._password:
            return []
        username = self._username or ""
        return [self._password, f"\0{username}\0{self._password}"]


async def _quit(client: aiosmtplib.SMTP) -> None:
    try:
        if client.is_connected:
            await client.quit(timeout=_QUIT_TIMEOUT)
    except (aiosmtplib.SMTPException, OSError):
        pass
    finally:
        client.close()
