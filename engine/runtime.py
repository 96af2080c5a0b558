"""The engine: every long-lived part, built in one place and handed down.

``Engine`` is the core's half of the composition: configuration, storage, the
writer, the rules, the bus, the workers and retention. It is given its
capabilities (``engine.app`` lists them) and reads them through
``engine.capability`` alone: each one's job kinds go to the bus (planners) and
the workers (handlers), its routes to the server, its gauges to ``/metrics``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping, MutableMapping, Sequence
from datetime import timedelta
from typing import TextIO

from aiohttp import web
from sqlalchemy import func, select

from engine.capability import Capability, Runtime, Services
from engine.config import Settings
from engine.core.clock import Clock, SystemClock
from engine.core.logs import Logger, make_logger
from engine.core.metrics import Metrics
from engine.core.migrate import migrate, migration_status
from engine.core.schema import jobs
from engine.core.storage import Database
from engine.core.writer import Writer
from engine.errors import ConfigError, StorageError
from engine.events.bus import Bus
from engine.http.auth import Keyring, development_key
from engine.http.devenv import DevEnvironment
from engine.jobs.kinds import Follower, JobKind, by_name
from engine.jobs.retention import Retention
from engine.jobs.worker import Waker, Worker
from engine.rules.reload import ReloadOutcome, Rules, RulesError

__all__ = ["ENGINE", "Engine"]


class Engine:
    """One running Ownly: configuration, storage, rules, the bus, the workers, the capabilities."""

    def __init__(
        self,
        settings: Settings,
        capabilities: Sequence[Capability],
        *,
        logger: Logger,
        clock: Clock,
        environ: MutableMapping[str, str],
    ) -> None:
        self.settings = settings
        self.capabilities = tuple(capabilities)
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
        self.bus = Bus(
            self.rules,
            clock=clock,
            wake=self.waker.wake,
            env=environ,
            logger=logger,
            unplanned=self.metrics.matches_unplanned,
        )
        queue = settings.config.queue
        self.followers: dict[str, Follower] = {}  # filled once the kinds are known
        self.runtimes: dict[str, Runtime] = {}  # filled once every capability is built
        services = {
            capability.name: Services(
                settings=settings,
                section=settings.section(capability.name) if capability.section else None,
                clock=clock,
                logger=logger,
                environ=environ,
                database=self.database,
                writer=self.writer,
                bus=self.bus,
                rules=self.rules,
                wake=self.waker.wake,
                registry=self.metrics.registry,
                lease=timedelta(seconds=queue.lease),
                concurrency=queue.concurrency,
                followers=self.followers,
                peers=self.runtimes,
            )
            for capability in self.capabilities
        }
        for capability in self.capabilities:
            self.runtimes[capability.name] = capability.build(services[capability.name])
        self.kinds: Mapping[str, JobKind] = by_name(
            [kind for runtime in self.runtimes.values() for kind in runtime.kinds]
        )
        self.followers.update(
            {name: k.follower for name, k in self.kinds.items() if k.follower is not None}
        )
        self.bus.use(
            {name: k.planner for name, k in self.kinds.items() if k.planner is not None},
            [k.watcher for k in self.kinds.values() if k.watcher is not None],
        )
        retention = settings.config.retention
        self.retention = Retention(
            self.writer,
            clock=clock,
            logger=logger,
            jobs_for=retention.jobs,
            events_for=retention.events,
            interval=retention.interval,
            batch=retention.batch,
        )
        self.worker: Worker | None = None
        self._started: list[JobKind] = []
        self._watch_stop = asyncio.Event()
        self._stop_deadline: float | None = None  # when running jobs must be done by
        self._watcher: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        capabilities: Sequence[Capability],
        *,
        log_stream: TextIO,
        clock: Clock | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Engine:
        server = settings.config.server
        logger = make_logger(log_stream, fmt=server.log_format, level=server.log_level)
        return cls(
            settings,
            capabilities,
            logger=logger,
            clock=clock or SystemClock(),
            environ=dict(os.environ if environ is None else environ),
        )

    def add_routes(self, app: web.Application) -> None:
        """Every capability's routes."""
        for runtime in self.runtimes.values():
            runtime.add_routes(app)

    async def start(self, *, watch: bool = True) -> None:
        """Open and migrate the database, apply the rules, start the workers."""
        if self.settings.production and not self.settings.api_keys:
            raise ConfigError(
                f"{self.settings.source}: [api.keys]: production mode needs at least one API key"
            )
        await self.database.open()
        try:
            await self._migrate()
            if not self.settings.production and not self.settings.api_keys:
                key = development_key(self.settings.state_dir, self.settings.scopes)
                self.keyring = Keyring((key,))
                self.logger.info(
                    "auth.development_key", path=str(self.settings.state_dir / "dev-key")
                )
            self.writer.start()
            outcome = await self.reload("start")
            if outcome.status == "failed":
                count = len(outcome.diagnostics)
                raise RulesError(
                    f"the rule files do not compile ({count} error{'s' * (count != 1)})",
                    details=outcome.text,
                )
            for kind in self.kinds.values():
                await kind.handler.start()
                self._started.append(kind)
        except BaseException:
            await self._release()  # what started before the failure (a handler's session)
            raise
        self._start_worker()
        self.retention.start()
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
        for kind in self._started:
            kind.handler.stop()

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
            await self.retention.stop()
            if self.worker is not None:
                await self.worker.stop(grace=max(0.0, self._stop_deadline - time.monotonic()))
        finally:
            await self._release()

    async def _release(self) -> None:
        """Close the started handlers, then the writer and the database."""
        started, self._started = self._started, []
        for kind in started:
            try:
                await kind.handler.close()
            except Exception:  # one kind's bug must not keep the rest open
                self.logger.exception("engine.close_failed", kind=kind.name)
        await self.writer.stop()
        await self.database.close()

    def _start_worker(self) -> None:
        queue = self.settings.config.queue
        self.worker = Worker(
            self.database,
            self.writer,
            {name: kind.handler for name, kind in self.kinds.items()},
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
            attempts=self.metrics.job_attempts,
            finished=self.metrics.jobs_finished,
            followers=self.followers,
        )
        self.worker.start()

    def _ingest_under_load(self) -> bool:
        return self.ingesting >= self.settings.config.queue.ingest_load

    async def refresh_gauges(self) -> None:
        """Read what the gauges show (queue depth, each capability's) from the database."""
        try:
            async with self.database.translate_errors(), self.database.connect() as conn:
                depth = (
                    await conn.execute(
                        select(jobs.c.kind, func.count())
                        .where(jobs.c.state.in_(("pending", "held", "waiting")))
                        .group_by(jobs.c.kind)
                    )
                ).all()
                for runtime in self.runtimes.values():
                    await runtime.refresh_gauges(conn)
        except StorageError:
            return
        self.metrics.queue_depth.clear()
        for kind in self.kinds:
            self.metrics.queue_depth.labels(kind).set(0)
        for kind, count in depth:
            self.metrics.queue_depth.labels(kind).set(count)

    async def _migrate(self) -> None:
        locations = [c.migrations for c in self.capabilities if c.migrations is not None]
        status = await migration_status(self.database, locations)
        if status.is_current:
            return
        if not status.is_new and self.settings.production:
            raise StorageError(
                f"database {self.database.label} is at migration {status.label}, "
                f"this version needs {', '.join(status.head)}: run `ownly migrate`"
            )
        before, after = await migrate(self.database, locations)
        self.logger.info("database.migrated", source=before.label, target=after.label)


ENGINE = web.AppKey("engine", Engine)
