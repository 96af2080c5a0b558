"""The email capability as it runs: its job kind, providers, metrics, routes and gauges."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from connectors.email.base import EmailProvider
from connectors.email.mailgun import MailgunProvider
from connectors.email.outbox import OutboxProvider
from connectors.email.sendgrid import SendGridProvider
from connectors.email.signatures import load_sendgrid_key
from connectors.email.smtp import SmtpProvider
from dsl.render import Renderers
from engine.capability import Services
from engine.email import KIND
from engine.email.config import (
    EmailConfig,
    OutboxConfig,
    ProviderConfig,
    SendGridConfig,
    SmtpConfig,
)
from engine.email.feedback import STATUSES, Change, RecordChanges
from engine.email.handler import EmailHandler, Route
from engine.email.sending import Composer
from engine.email.tables import emails
from engine.email.tracking import Tracker
from engine.errors import ConfigError
from engine.jobs.kinds import JobKind
from engine.jobs.policy import SchedulePolicy, TokenBucket

__all__ = ["EMAIL", "Email"]


class Email:
    """Renders, queues and sends emails, and hears what became of them."""

    def __init__(self, services: Services) -> None:
        config: EmailConfig = services.section
        self.services = services
        self.config = config
        settings = services.settings
        self.sendgrid_key = _sendgrid_key(services.environ, config.sendgrid_public_key_env)
        self._tls = {
            provider.name: _tls_context(settings.resolve(provider.ca_file))
            for provider in config.providers
            if isinstance(provider, SmtpConfig) and provider.ca_file is not None
        }
        server = settings.config.server
        host = "127.0.0.1" if server.host in ("0.0.0.0", "::", "") else server.host
        public_url = config.public_url or f"http://{host}:{server.port}"
        self.tracker = Tracker(self._tracking_key, public_url)
        self.renderers = Renderers(settings.templates_dir)
        self.composer = Composer(config, self.renderers, self.tracker, services.environ)
        registry = services.registry
        self.attempts = Counter(
            "ownly_email_attempts",
            "Sends tried at a provider, by provider and outcome (sent, transient, permanent).",
            ["provider", "outcome"],
            registry=registry,
        )
        self.attempt_seconds = Histogram(
            "ownly_email_attempt_seconds",
            "Time of one send at one provider.",
            ["provider"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.provider_events = Counter(
            "ownly_email_provider_events",
            "Provider and tracking reports recorded, by source and type.",
            ["source", "type"],
            registry=registry,
        )
        self.statuses = Gauge(
            "ownly_emails", "Emails in the log, by status.", ["status"], registry=registry
        )
        self.handler = EmailHandler(
            connect=self._connect,
            disconnect=self._disconnect,
            database=services.database,
            clock=services.clock,
            bus=services.bus,
            tracker=self.tracker,
            policy=SchedulePolicy(config.max_attempts, tuple(config.retry_delays)),
            unsubscribe_mailto=config.unsubscribe_mailto,
            attempts=self.attempts,
            latency=self.attempt_seconds,
        )
        self._clients: list[httpx.AsyncClient] = []

    def _tracking_key(self) -> bytes:
        """The key that signs links, from its variable, read when the engine starts (building
        it writes nothing); in development mode one is made and kept in the state directory."""
        name = self.config.tracking_key_env
        fill = self.services.rules.fill_missing
        if name not in self.services.environ and fill is not None:
            fill([name])
        key = self.services.environ.get(name)
        if not key:
            raise ConfigError(
                f"[email] tracking_key_env: the environment variable {name} "
                "(the key that signs tracking and unsubscribe links) is not set"
            )
        return key.encode("utf-8")

    @property
    def kinds(self) -> Sequence[JobKind]:
        return (JobKind(KIND, self.handler, target=lambda job: None),)

    def _connect(self) -> list[Route]:
        """The providers, in failover order, each with its limits (and the tracking key)."""
        self.tracker.load()
        routes = []
        for provider in self.config.providers:
            bucket = None
            if provider.rate_limit is not None:
                rate = provider.rate_limit
                bucket = TokenBucket(rate, burst=max(1.0, rate), clock=time.monotonic)
            routes.append(
                Route(self._provider(provider), asyncio.Semaphore(provider.concurrency), bucket)
            )
        return routes

    def _provider(self, config: ProviderConfig) -> EmailProvider:
        environ = self.services.environ
        if isinstance(config, OutboxConfig):
            directory = self.services.settings.state_dir / config.directory
            return OutboxProvider(directory, name=config.name)
        if isinstance(config, SmtpConfig):
            return SmtpProvider(
                config.host,
                config.port,
                security=config.security,
                username=_secret(environ, config.username_env) if config.username_env else None,
                password=_secret(environ, config.password_env) if config.password_env else None,
                pool_size=config.pool_size,
                timeout=config.timeout,
                tls_context=self._tls.get(config.name),
                name=config.name,
            )
        key = _secret(environ, config.api_key_env)  # before a client is made that would leak
        client = httpx.AsyncClient(timeout=config.timeout, follow_redirects=False)
        self._clients.append(client)
        if isinstance(config, SendGridConfig):
            return SendGridProvider(client, key, base_url=config.base_url, name=config.name)
        return MailgunProvider(
            client, key, config.domain, base_url=config.base_url, name=config.name
        )

    async def _disconnect(self) -> None:
        clients, self._clients = self._clients, []
        for client in clients:
            await client.aclose()

    async def record(
        self, changes: Sequence[Change], once: tuple[str, str] | None = None
    ) -> list[bool] | None:
        """Record what was heard about emails (``engine.email.feedback``); per change,
        whether it was new, or None when ``once`` was seen before."""
        services = self.services
        write = RecordChanges(services.bus, changes, services.clock.now(), once)
        recorded = await services.writer.submit(write)
        for change, new in zip(changes, recorded or (), strict=False):
            if new:
                self.provider_events.labels(change.source, change.type).inc()
        return recorded

    def add_routes(self, app: web.Application) -> None:
        from engine.email import api, callbacks, logs, tracking  # they read EMAIL from here

        app[EMAIL] = self
        api.add_routes(app)
        logs.add_routes(app)
        tracking.add_routes(app, self.tracker, self.record, self.services.clock)
        callbacks.add_routes(app)

    async def refresh_gauges(self, conn: AsyncConnection) -> None:
        counts: dict[str, int] = dict(
            (
                await conn.execute(select(emails.c.status, func.count()).group_by(emails.c.status))
            ).all()
        )
        for status in STATUSES:
            self.statuses.labels(status).set(counts.get(status, 0))


def _sendgrid_key(environ: Mapping[str, str], name: str | None) -> EllipticCurvePublicKey | None:
    text = environ.get(name) if name else None
    if not text:
        return None
    try:
        return load_sendgrid_key(text)
    except ValueError as exc:
        raise ConfigError(f"[email] sendgrid_public_key_env: {name}: {exc}") from None


def _tls_context(ca_file: Path) -> ssl.SSLContext:
    """The system's trust store and the authorities in ``ca_file``."""
    context = ssl.create_default_context()
    try:
        context.load_verify_locations(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"[email] providers: ca_file {ca_file}: not a readable PEM bundle ({exc})"
        ) from None
    return context


def _secret(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name)
    if not value:
        raise ConfigError(f"[email] providers: the environment variable {name} is not set")
    return str(value)


EMAIL = web.AppKey("email", Email)
