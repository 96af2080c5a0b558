"""The management and ingest API under ``/api``."""

from __future__ import annotations

from aiohttp import web

from engine.api import deliveries, events, rules, webhooks

__all__ = ["add_routes"]


def add_routes(app: web.Application) -> None:
    events.add_routes(app)
    rules.add_routes(app)
    webhooks.add_routes(app)
    deliveries.add_routes(app)
