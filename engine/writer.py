"""One writer, many callers: group commit.

Every write to the database goes through ``Writer.submit``. A single task takes
whatever has queued up, applies it in one transaction and commits once, so a
hundred concurrent requests cost one ``fsync`` rather than a hundred. Writes of
the same kind in one group are applied together (one ``executemany``), each kind
inside its own savepoint so that one failing kind fails only its callers.

A caller's future resolves only after the commit that holds its write; a write
that arrives while a commit is in flight waits for the next one, never for a
commit that does not include it.

The transaction runs on the writer's own thread and event loop, with its own
connection: a group's statements each take a round trip to the database
driver, and on the server's loop every round trip would queue behind the
request handlers that are waiting for this very commit. The server's loop
awaits one future per group.
"""

from __future__ import annotations

import asyncio
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Self, TypeVar

from prometheus_client import Histogram
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.errors import StorageError
from engine.logs import Logger
from engine.storage import Database

__all__ = ["BatchWrite", "Writer"]

T = TypeVar("T")


class BatchWrite(ABC, Generic[T]):
    """A write the writer can apply together with others of its kind."""

    @classmethod
    @abstractmethod
    async def apply_all(cls, conn: AsyncConnection, writes: Sequence[Self]) -> Sequence[T]:
        """Apply ``writes`` on ``conn`` (inside a transaction); one result per write."""

    def committed(self, result: T) -> None:
        """Called once the transaction holding this write has committed."""


@dataclass
class _Pending:
    write: BatchWrite[Any]
    future: asyncio.Future[Any]
    result: Any = None
    error: BaseException | None = None
    queued_at: float = field(default_factory=time.perf_counter)


class Writer:
    """The single task that owns every write transaction."""

    def __init__(
        self,
        database: Database,
        *,
        logger: Logger,
        max_group: int = 1024,
        group_sizes: Histogram | None = None,
        commit_seconds: Histogram | None = None,
    ) -> None:
        # The writer's own connection to the same database, used only on its thread.
        self._database = Database(database.url, database.config)
        self._logger = logger
        self._max_group = max_group
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._group_sizes = group_sizes
        self._commit_seconds = commit_seconds

    async def submit(self, write: BatchWrite[T]) -> T:
        """Apply ``write``; return its result once it is committed."""
        if self._task is None or self._task.done():
            raise StorageError("the writer is not running")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(write, future))
        return await future

    def start(self) -> None:
        if self._task is not None:
            return
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="ownly-writer", daemon=True
        )
        self._thread.start()
        self._task = asyncio.create_task(self._run(), name="ownly-writer")

    async def stop(self) -> None:
        """Commit what has been submitted, then stop."""
        if self._task is None or self._loop is None or self._thread is None:
            return
        self._queue.put_nowait(None)
        await self._task
        self._task = None
        await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(self._database.close(), self._loop)
        )
        self._loop.call_soon_threadsafe(self._loop.stop)
        await asyncio.to_thread(self._thread.join)
        self._loop.close()
        self._loop = self._thread = None

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            group = [first]
            while len(group) < self._max_group and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                    break
                group.append(item)
            await self._commit(group)

    async def _commit(self, group: list[_Pending]) -> None:
        assert self._loop is not None
        started = time.perf_counter()
        try:
            await asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(self._transaction(group), self._loop)
            )
        except Exception as exc:  # the commit itself failed: nothing in the group was written
            self._logger.error("writer.commit_failed", error=str(exc), writes=len(group))
            for pending in group:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        if self._group_sizes is not None:
            self._group_sizes.observe(len(group))
        if self._commit_seconds is not None:
            self._commit_seconds.observe(time.perf_counter() - started)
        for pending in group:
            if pending.future.done():  # the caller gave up (cancelled); the write stands
                continue
            if pending.error is not None:
                pending.future.set_exception(pending.error)
            else:
                pending.write.committed(pending.result)
                pending.future.set_result(pending.result)

    async def _transaction(self, group: list[_Pending]) -> None:
        """On the writer's thread: apply the group in one transaction and commit."""
        if not self._database.is_open:
            await self._database.open()
        by_kind: dict[type[BatchWrite[Any]], list[_Pending]] = {}
        for pending in group:
            by_kind.setdefault(type(pending.write), []).append(pending)
        async with self._database.translate_errors(), self._database.begin() as conn:
            for kind, items in by_kind.items():
                await self._apply(conn, kind, items)

    async def _apply(
        self, conn: AsyncConnection, kind: type[BatchWrite[Any]], items: list[_Pending]
    ) -> None:
        try:
            async with conn.begin_nested():
                results = await kind.apply_all(conn, [item.write for item in items])
        except Exception as exc:  # only this kind's savepoint is rolled back
            self._logger.warning("writer.write_failed", kind=kind.__name__, error=str(exc))
            for item in items:
                item.error = exc
            return
        if len(results) != len(items):
            raise StorageError(f"{kind.__name__} answered {len(results)} of {len(items)} writes")
        for item, result in zip(items, results, strict=True):
            item.result = result
