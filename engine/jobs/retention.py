"""Retention: finished jobs, their attempts and old events are pruned, in bounded batches.

``[retention]`` in ``ownly.toml`` says how long each is kept: a job (with its
attempts) for ``jobs`` after it finished (succeeded, failed or cancelled), an
event for ``events`` after it was received, once no job refers to it any
more. Unfinished work is never pruned. The pruner runs every ``interval``,
off the hot path: each batch is one short write of at most ``batch`` jobs
and ``batch`` events, and the writer serves other writes between batches.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Self

from sqlalchemy import Integer, bindparam, delete, exists, not_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import BindParameter

from engine.core.clock import Clock
from engine.core.logs import Logger
from engine.core.schema import UTCDateTime, events, job_attempts, jobs
from engine.core.writer import BatchWrite, Writer

__all__ = ["FINISHED", "PruneBatch", "Pruned", "Retention"]

FINISHED = ("succeeded", "failed", "cancelled")


class Pruned(NamedTuple):
    """How many jobs and events one batch removed."""

    jobs: int
    events: int


_LIMIT = bindparam("p_limit", type_=Integer())
_OLD_JOBS = (
    select(jobs.c.id)
    .where(
        jobs.c.state.in_(FINISHED),
        jobs.c.finished_at < bindparam("p_jobs", type_=UTCDateTime()),
    )
    .order_by(jobs.c.finished_at)
    .limit(_LIMIT)
)
_IDS: BindParameter[Any] = bindparam("p_ids", expanding=True)
_OLD_EVENTS = (
    select(events.c.id)
    .where(
        events.c.received_at < bindparam("p_events", type_=UTCDateTime()),
        not_(exists().where(jobs.c.event_id == events.c.id)),
    )
    .order_by(events.c.received_at)
    .limit(_LIMIT)
)


_DELETE_ATTEMPTS = delete(job_attempts).where(job_attempts.c.job_id.in_(_IDS))
_DELETE_JOBS = delete(jobs).where(jobs.c.id.in_(_IDS))
_DELETE_EVENTS = delete(events).where(events.c.id.in_(_IDS))


@dataclass(frozen=True)
class PruneBatch(BatchWrite[Pruned]):
    """Delete at most ``limit`` jobs finished before ``jobs_before`` (their attempts
    first), then at most ``limit`` events received before ``events_before`` that no
    job refers to."""

    jobs_before: datetime
    events_before: datetime
    limit: int

    @classmethod
    def apply_all(cls, conn: Connection, writes: Sequence[Self]) -> list[Pruned]:
        return [write._apply(conn) for write in writes]

    def _apply(self, conn: Connection) -> Pruned:
        job_ids = list(conn.scalars(_OLD_JOBS, {"p_jobs": self.jobs_before, "p_limit": self.limit}))
        if job_ids:
            conn.execute(
                delete(job_attempts).where(job_attempts.c.job_id.in_(_IDS)), {"p_ids": job_ids}
            )
            conn.execute(delete(jobs).where(jobs.c.id.in_(_IDS)), {"p_ids": job_ids})
        event_ids = list(
            conn.scalars(_OLD_EVENTS, {"p_events": self.events_before, "p_limit": self.limit})
        )
        if event_ids:
            conn.execute(_DELETE_EVENTS, {"p_ids": event_ids})
        return Pruned(len(job_ids), len(event_ids))


class Retention:
    """Prunes what ``[retention]`` no longer keeps, every ``interval`` seconds on the clock."""

    def __init__(
        self,
        writer: Writer,
        *,
        clock: Clock,
        logger: Logger,
        jobs_for: float,
        events_for: float,
        interval: float,
        batch: int,
    ) -> None:
        self._writer = writer
        self._clock = clock
        self._logger = logger
        self._jobs_for = timedelta(seconds=jobs_for)
        self._events_for = timedelta(seconds=events_for)
        self._interval = interval
        self._batch = batch
        self._task: asyncio.Task[None] | None = None

    async def prune(self) -> Pruned:
        """Prune everything due now, batch after batch; answer the totals."""
        now = self._clock.now()
        write = PruneBatch(now - self._jobs_for, now - self._events_for, self._batch)
        total = Pruned(0, 0)
        while True:
            pruned = await self._writer.submit(write)
            total = Pruned(total.jobs + pruned.jobs, total.events + pruned.events)
            if pruned.jobs < self._batch and pruned.events < self._batch:
                break
            await asyncio.sleep(0)  # other writes between batches
        if total.jobs or total.events:
            self._logger.info("retention.pruned", jobs=total.jobs, events=total.events)
        return total

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="ownly-retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            await self._clock.sleep(self._interval)
            try:
                await self.prune()
            except Exception as exc:  # the next round tries again
                self._logger.error("retention.failed", error=str(exc))
