"""The webhooks capability as it runs: its job kind, metrics, routes and gauges."""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp
from aiohttp import web
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from connectors.ssrf import guarded_session
from connectors.webhook import WebhookSender
from engine.capability import Services
from engine.jobs.kinds import JobKind
from engine.version import VERSION
from engine.webhooks import KIND
from engine.webhooks.config import WebhooksConfig
from engine.webhooks.handler import WebhookHandler
from engine.webhooks.health import Health
from engine.webhooks.planner import WebhookPlanner, target
from engine.webhooks.tables import webhook_state

__all__ = ["WEBHOOKS", "Webhooks"]


class Webhooks:
    """Plans deliveries of matched events, sends them, keeps each webhook's health."""

    def __init__(self, services: Services) -> None:
        config: WebhooksConfig = services.section
        self.services = services
        registry = services.registry
        self.attempts = Counter(
            "ownly_webhook_attempts",
            "Webhook delivery attempts, by outcome (delivered, failed, throttled, ...).",
            ["outcome"],
            registry=registry,
        )
        self.deliveries = Counter(
            "ownly_webhook_deliveries",
            "Webhook deliveries finished, by outcome (succeeded, failed).",
            ["outcome"],
            registry=registry,
        )
        self.attempt_seconds = Histogram(
            "ownly_webhook_attempt_seconds",
            "Time of one webhook attempt, from connect to the end of the answer.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.disabled = Gauge(
            "ownly_webhooks_disabled",
            "Webhooks whose runtime state is disabled.",
            registry=registry,
        )
        self.planner = WebhookPlanner(services.clock)
        self.health = Health(
            services.bus, disable_after=config.disable_after, outcomes=self.deliveries
        )
        self.per_host = min(config.connections_per_host, services.concurrency)
        self.handler = WebhookHandler(
            connect=self._connect,
            clock=services.clock,
            environ=services.environ,
            logger=services.logger,
            health=self.health,
            attempts=self.attempts,
            latency=self.attempt_seconds,
            per_host=self.per_host,
        )
        self._config = config

    @property
    def kinds(self) -> Sequence[JobKind]:
        return (JobKind(KIND, self.handler, planner=self.planner, target=target),)

    def _connect(self) -> tuple[aiohttp.ClientSession, WebhookSender]:
        session = guarded_session(
            self._config.allow_networks,
            limit=self.services.concurrency,
            limit_per_host=self.per_host,
        )
        sender = WebhookSender(
            session,
            user_agent=f"Ownly/{VERSION}",
            response_body_limit=self._config.response_body_limit,
            clock=lambda: self.services.clock.now().timestamp(),
        )
        return session, sender

    def add_routes(self, app: web.Application) -> None:
        from engine.webhooks import api, deliveries  # they read WEBHOOKS from here

        app[WEBHOOKS] = self
        api.add_routes(app)
        deliveries.add_routes(app)

    async def refresh_gauges(self, conn: AsyncConnection) -> None:
        disabled = await conn.scalar(
            select(func.count()).where(webhook_state.c.state == "disabled")
        )
        self.disabled.set(disabled or 0)


WEBHOOKS = web.AppKey("webhooks", Webhooks)
