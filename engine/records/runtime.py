"""The records capability as it runs: the ``record`` kind and ``GET /api/records/{record}/{id}``."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.capability import Services
from engine.jobs.kinds import JobKind
from engine.records import KIND
from engine.records.config import RecordsConfig
from engine.records.handler import RecordHandler, target
from engine.version import VERSION
from engine.workflows.http import connect_from

__all__ = ["RECORDS", "Records"]


class Records:
    """Sends the writes of http-store records to the platform; serves the table store's."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.config: RecordsConfig = services.section
        connect = connect_from(
            services.settings,
            concurrency=services.concurrency,
            clock=services.clock,
            user_agent=f"Ownly/{VERSION}",
        )
        self.handler = RecordHandler(
            connect=connect,
            clock=services.clock,
            environ=services.environ,
            logger=services.logger,
        )

    @property
    def kinds(self) -> Sequence[JobKind]:
        return (JobKind(KIND, self.handler, target=target),)

    def add_routes(self, app: web.Application) -> None:
        from engine.records import api  # it reads RECORDS from here

        app[RECORDS] = self
        api.add_routes(app)

    async def refresh_gauges(self, conn: AsyncConnection) -> None:
        return None


RECORDS = web.AppKey("records", Records)
