"""The engine: every long-lived part, built in one place and handed down."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping, MutableMapping
from datetime import timedelta
from typing import TextIO

import aiohttp
from aiohttp import web
from sqlalchemy import func, select

from connectors.ssrf import guarded_session
from connectors.webhook import WebhookSender
from engine.config import Settings
from engine.core.clock import Clock, SystemClock
from engine.core.logs import Logger, make_logger
from engine.core.metrics import Metrics
from engine.core.migrate import migrate, migration_status
from engine.core.schema import jobs, webhook_state
from engine.core.storage import Database
from engine.core.writer import Writer
from engine.errors import ConfigError, StorageError
from engine.events.bus import Bus
from engine.http.auth import Keyring, development_key
from engine.http.devenv import DevEnvironment
from engine.jobs.worker import Waker, Worker
from engine.rules.reload import ReloadOutcome, Rules, RulesError
from engine.version import VERSION
from engine.webhooks.delivery import KIND as WEBHOOK
from engine.webhooks.delivery import WebhookHandler, WebhookPlanner
from engine.webhooks.health import Health

__all__ = ["ENGINE", "Engine"]


class Engine:
    """One running Ownly: configuration, storage, rules, the bus and the workers."""

    def __init__(
        self,
        settings: Settings,
        *,
        logger: Logger,
        clock: Clock,
        environ: MutableMapping[str, str],
    ) -> None:
        self.settings = settings
        self.logger = logger
        self.clock = clock
        self.environ = environ
        self.metrics = Metrics()
        self.database = Database(settings.database_url, settings.config.database)
        self.keyring = Keyring(settings.api_keys)
        self.writer = Writer(
            self.database,
            logger=logger,
            group_sizes=self.metrics.writer_group_size,
            commit_seconds=self.metrics.writer_commit_seconds,
        )
        self.rules = Rules(settings.rule_paths, settings.templates_dir, environ, clock, logger)
        if not settings.production:
            server = settings.config.server
            host = "127.0.0.1" if server.host in ("0.0.0.0", "::", "") else server.host
            self.rules.fill_missing = DevEnvironment(
                settings.state_dir, environ, base_url=f"http://{host}:{server.port}", logger=logger
            ).fill
        self.waker = Waker()
        self.ingesting = 0  # ingest requests in flight (workers step back when many are)
        self.planner = WebhookPlanner(clock)
        self.bus = Bus(
            self.rules,
            {WEBHOOK: self.planner},
            clock=clock,
            waker=self.waker,
            env=environ,
        )
        self.health = Health(
            self.bus,
            disable_after=settings.config.webhooks.disable_after,
            outcomes=self.metrics.webhook_deliveries,
        )
        self.webhooks: WebhookHandler | None = None
        self.worker: Worker | None = None
        self._session: aiohttp.ClientSession | None = None
        self._watch_stop = asyncio.Event()
        self._stop_deadline: float | None = None  # when running jobs must be done by
        self._watcher: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        log_stream: TextIO,
        clock: Clock | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Engine:
        server = settings.config.server
        logger = make_logger(log_stream, fmt=server.log_format, level=server.log_level)
        return cls(
            settings,
            logger=logger,
            clock=clock or SystemClock(),
            environ=dict(os.environ if environ is None else environ),
        )

    async def start(self, *, watch: bool = True) -> None:
        """Open and migrate the database, apply the rules, start the workers."""
        if self.settings.production and not self.settings.api_keys:
            raise ConfigError(
                f"{self.settings.source}: [api.keys]: production mode needs at least one API key"
            )
        await self.database.open()
        await self._migrate()
        if not self.settings.production and not self.settings.api_keys:
            key = development_key(self.settings.state_dir)
            self.keyring = Keyring((key,))
            self.logger.info("auth.development_key", path=str(self.settings.state_dir / "dev-key"))
        self.writer.start()
        outcome = await self.reload("start")
        if outcome.status == "failed":
            count = len(outcome.diagnostics)
            raise RulesError(
                f"the rule files do not compile ({count} error{'s' * (count != 1)})",
                details=outcome.text,
            )
        self._start_worker()
        if watch:
            self._watcher = asyncio.create_task(
                self.rules.watch(self.writer, self._watch_stop), name="ownly-rules-watch"
            )

    async def reload(self, reason: str) -> ReloadOutcome:
        return await self.rules.reload(self.writer, reason)

    def begin_stop(self) -> None:
        """SIGTERM: start no more jobs; the grace period for running ones starts now.

        The server drains its requests meanwhile: both share one grace period.
        """
        if self._stop_deadline is None:
            self._stop_deadline = time.monotonic() + self.settings.config.server.shutdown_grace
        if self.worker is not None:
            self.worker.stop_leasing()
        if self.webhooks is not None:
            self.webhooks.stop()

    async def stop(self) -> None:
        """Let running jobs finish within the grace period, release the rest, close."""
        self.begin_stop()
        assert self._stop_deadline is not None
        self._watch_stop.set()
        try:
            if self._watcher is not None:
                try:
                    await self._watcher
                except (asyncio.CancelledError, Exception) as exc:  # it may have died earlier
                    self.logger.error("rules.watch_ended", error=repr(exc))
            if self.worker is not None:
                await self.worker.stop(grace=max(0.0, self._stop_deadline - time.monotonic()))
        finally:
            if self._session is not None:
                await self._session.close()
            await self.writer.stop()
            await self.database.close()

    def _start_worker(self) -> None:
        webhooks = self.settings.config.webhooks
        queue = self.settings.config.queue
        per_host = min(webhooks.connections_per_host, queue.concurrency)
        self._session = guarded_session(
            webhooks.allow_networks, limit=queue.concurrency, limit_per_host=per_host
        )
        sender = WebhookSender(
            self._session,
            user_agent=f"Ownly/{VERSION}",
            response_body_limit=webhooks.response_body_limit,
            clock=lambda: self.clock.now().timestamp(),
        )
        handler = WebhookHandler(
            sender,
            clock=self.clock,
            environ=self.environ,
            logger=self.logger,
            health=self.health,
            attempts=self.metrics.webhook_attempts,
            latency=self.metrics.webhook_attempt_seconds,
            per_host=per_host,
        )
        self.webhooks = handler
        self.worker = Worker(
            self.database,
            self.writer,
            {WEBHOOK: handler},
            clock=self.clock,
            waker=self.waker,
            logger=self.logger,
            concurrency=queue.concurrency,
            batch=queue.batch,
            lease=timedelta(seconds=queue.lease),
            poll_interval=queue.poll_interval,
            under_load=self._ingest_under_load if queue.ingest_load else None,
            concurrency_under_load=queue.concurrency_under_load,
            max_delay_under_load=queue.max_delay_under_load,
        )
        self.worker.start()

    def _ingest_under_load(self) -> bool:
        return self.ingesting >= self.settings.config.queue.ingest_load

    async def refresh_gauges(self) -> None:
        """Read what the gauges show (queue depth, disabled webhooks) from the database."""
        try:
            async with self.database.translate_errors(), self.database.connect() as conn:
                depth = (
                    await conn.execute(
                        select(jobs.c.kind, func.count())
                        .where(jobs.c.state.in_(("pending", "held", "waiting")))
                        .group_by(jobs.c.kind)
                    )
                ).all()
                disabled = await conn.scalar(
                    select(func.count()).where(webhook_state.c.state == "disabled")
                )
        except StorageError:
            return
        self.metrics.queue_depth.clear()
        self.metrics.queue_depth.labels(WEBHOOK).set(0)
        for kind, count in depth:
            self.metrics.queue_depth.labels(kind).set(count)
        self.metrics.webhooks_disabled.set(disabled or 0)

    async def _migrate(self) -> None:
        status = await migration_status(self.database)
        if status.is_current:
            return
        if not status.is_new and self.settings.production:
            raise StorageError(
                f"database {self.database.label} is at migration {status.current!r}, "
                f"this version needs {status.head!r}: run `ownly migrate`"
            )
        before, after = await migrate(self.database)
        self.logger.info("database.migrated", source=before.current, target=after.current)


ENGINE = web.AppKey("engine", Engine)
