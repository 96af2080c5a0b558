"""A queue on a real SQLite file with a manual clock, and a way to run it until done."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from engine.config import DatabaseConfig
from engine.core.clock import ManualClock
from engine.core.logs import make_logger
from engine.core.migrate import migrate
from engine.core.storage import Database
from engine.core.writer import Writer
from engine.jobs.queue import NewJob, insert_jobs
from engine.jobs.worker import Waker, Worker


@dataclass
class QueueHarness:
    database: Database
    writer: Writer
    clock: ManualClock
    waker: Waker

    async def add(
        self,
        *keys: str,
        max_attempts: int = 5,
        kind: str = "test",
        group: str | None = None,
        ordered: bool = False,
    ) -> None:
        """Jobs of ``kind`` due now, one per key (the key is also the payload)."""
        now = self.clock.now()
        new = [
            NewJob(kind, {"key": k}, k, max_attempts, now, group_key=group, ordered=ordered)
            for k in keys
        ]
        async with self.database.begin() as conn:
            await conn.run_sync(insert_jobs, new, now)
        self.waker.wake()

    def worker(self, handler: object, **options: object) -> Worker:
        return Worker(
            self.database,
            self.writer,
            {"test": handler},  # type: ignore[dict-item]
            clock=self.clock,
            waker=self.waker,
            logger=make_logger(io.StringIO()),
            **options,  # type: ignore[arg-type]
        )


@asynccontextmanager
async def queue_harness(directory: Path) -> AsyncIterator[QueueHarness]:
    database = Database(make_url(f"sqlite+aiosqlite:///{directory}/q.db"), DatabaseConfig())
    await database.open()
    await migrate(database)
    writer = Writer(database, logger=make_logger(io.StringIO()))
    writer.start()
    try:
        yield QueueHarness(database, writer, ManualClock(), Waker())
    finally:
        await writer.stop()
        await database.close()


async def until(
    condition: Callable[[], bool], clock: ManualClock, worker: Worker | None = None
) -> None:
    """Run the engine until ``condition`` holds; when it is idle, jump the clock to its
    next wake-up, so time moves only while nothing is in flight."""
    idle_checks = 0
    for _ in range(4000):
        if condition():
            return
        await asyncio.sleep(0.002)
        idle = worker is not None and worker.busy == 0 and worker.napping
        idle_checks = idle_checks + 1 if idle else 0
        wakeup = clock.next_wakeup()
        if idle_checks >= 3 and wakeup is not None:
            clock.advance((wakeup - clock.now()).total_seconds())
            idle_checks = 0
    raise AssertionError("condition not reached")
