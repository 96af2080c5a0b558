"""Workers: lease due jobs, run them with bounded concurrency, record the outcome.

The worker naps until the next job is due, the poll interval passes, or it is
woken (a commit created a job, or a slot freed up), so an idle engine costs one
cheap read per interval. On stop, running jobs get the grace period to finish;
the rest are released back to ``pending`` without counting the attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from prometheus_client import Counter

from engine.core.clock import Clock
from engine.core.logs import Logger
from engine.core.storage import Database
from engine.core.writer import Writer
from engine.jobs.kinds import (
    AttemptRecord,
    Deferred,
    Failed,
    Follower,
    Handler,
    Result,
    Retry,
    Succeeded,
)
from engine.jobs.queue import FinishJob, Job, LeaseJobs, Outcome, RenewLeases

__all__ = ["Waker", "Worker", "finish_for"]


def finish_for(
    job: Job,
    result: Result,
    owner: str,
    now: datetime,
    followers: Mapping[str, Follower] | None = None,
) -> FinishJob:
    """The write that records ``result`` of the leased ``job`` (``followers``, by
    kind: who hears of the end of a job some kind asked for)."""
    hook, attempt, kind, record = result.hook, job.attempts, job.kind, result.attempt
    if isinstance(result, Deferred):
        later = now + timedelta(seconds=max(0.0, result.delay))
        return FinishJob(
            job.id,
            owner,
            "deferred",
            now,
            due_at=later,
            hook=hook,
            attempt=attempt,
            kind=kind,
            followers=followers,
        )
    due: datetime | None = None
    error: str | None = None
    if isinstance(result, Succeeded):
        outcome: Outcome = "succeeded"
    elif isinstance(result, Retry) and job.attempts < job.max_attempts:
        outcome = "retry"
        due, error = now + timedelta(seconds=max(0.0, result.delay)), result.error
    else:
        outcome, error = "failed", result.error
    return FinishJob(
        job.id,
        owner,
        outcome,
        now,
        due_at=due,
        error=error,
        hook=hook,
        attempt=attempt,
        record=record,
        kind=kind,
        followers=followers,
    )


class Waker:
    """An in-process signal: something is due sooner than the next poll."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()

    async def nap(self, clock: Clock, seconds: float) -> None:
        """Return after ``seconds`` on ``clock`` or as soon as woken."""
        if self._event.is_set():
            self._event.clear()
            return
        woken = asyncio.ensure_future(self._event.wait())
        slept = asyncio.ensure_future(clock.sleep(seconds))
        try:
            await asyncio.wait({woken, slept}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (woken, slept):
                task.cancel()
            self._event.clear()


class Worker:
    """Runs due jobs through their kind's handler."""

    def __init__(
        self,
        database: Database,
        writer: Writer,
        handlers: Mapping[str, Handler],
        *,
        clock: Clock,
        waker: Waker,
        logger: Logger,
        concurrency: int = 64,
        batch: int = 64,
        lease: timedelta = timedelta(seconds=60),
        poll_interval: float = 1.0,
        retry_unexpected: float = 60.0,
        under_load: Callable[[], bool] | None = None,
        concurrency_under_load: int = 4,
        max_delay_under_load: float = 30.0,
        attempts: Counter | None = None,
        finished: Counter | None = None,
        followers: Mapping[str, Follower] | None = None,
    ) -> None:
        """``attempts`` counts attempts by kind and outcome; ``finished``, jobs that end
        (succeeded, failed) by kind; ``followers``, by kind, hear of the end of the
        jobs that kind asked for."""
        self.owner = f"worker-{secrets.token_hex(6)}"
        self._database = database
        self._writer = writer
        self._handlers = dict(handlers)
        self._followers = followers
        self._clock = clock
        self._waker = waker
        self._logger = logger.bind(worker=self.owner)
        self._concurrency = concurrency
        self._batch = batch
        self._under_load = under_load
        self._concurrency_under_load = min(concurrency, concurrency_under_load)
        self._max_delay_under_load = max_delay_under_load
        self._delay = 0.0  # how late the oldest job of the last lease was, in seconds
        self._lease = lease
        self._poll_interval = poll_interval
        self._retry_unexpected = retry_unexpected
        self._attempts = attempts
        self._finished_jobs = finished
        self._running: dict[asyncio.Task[None], Job] = {}
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self.napping = False  # waiting for work: a test may move its clock now

    @property
    def busy(self) -> int:
        return len(self._running)

    def concurrency(self) -> int:
        """How many jobs may run now: fewer while ingest is under load (ingest comes first).

        Jobs wait durably in the queue; events not yet acknowledged exist only
        in their senders' hands. So when the API is busy, workers step back to
        ``concurrency_under_load`` and leave the CPU to ingest; the backlog
        drains once the load passes. Not forever: once the jobs it leases are
        ``max_delay_under_load`` late, it runs at full concurrency again.
        """
        if (
            self._under_load is not None
            and self._delay < self._max_delay_under_load
            and self._under_load()
        ):
            return self._concurrency_under_load
        return self._concurrency

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=self.owner)
            self._heartbeat_task = asyncio.create_task(self._heartbeat(), name=f"{self.owner}-beat")

    def stop_leasing(self) -> None:
        """Start no more jobs (the running ones go on): the first step of stopping."""
        self._stopping = True
        self._waker.wake()

    async def stop(self, grace: float) -> None:
        """Stop leasing; give running jobs ``grace`` seconds; release what is left."""
        self.stop_leasing()
        if self._task is not None:
            await self._task
            self._task = None
        if self._running:
            await asyncio.wait(list(self._running), timeout=grace)
        unfinished = dict(self._running)
        for task in unfinished:
            task.cancel()
        for task in unfinished:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._release(list(unfinished.values()))
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat_task
            self._heartbeat_task = None

    async def _release(self, jobs: list[Job]) -> None:
        """Give leased jobs back, not run: pending again, the attempt not counted."""
        now = self._clock.now()
        releases = (
            FinishJob(job.id, self.owner, "released", now, attempt=job.attempts) for job in jobs
        )
        await asyncio.gather(*(self._writer.submit(release) for release in releases))
        if jobs:
            self._logger.info("worker.released", jobs=len(jobs))

    async def _heartbeat(self) -> None:
        """Keep the leases of running jobs alive, so a long job is never run twice at once."""
        every = self._lease.total_seconds() / 3
        while True:
            await self._clock.sleep(every)
            ids = tuple(job.id for job in self._running.values())
            if not ids:
                continue
            now = self._clock.now()
            try:
                await self._writer.submit(RenewLeases(self.owner, ids, now + self._lease, now))
            except Exception as exc:  # the next beat tries again; the lease has slack
                self._logger.error("worker.renew_failed", error=str(exc))

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                nap = await self._lease_due()
            except Exception as exc:  # the database is unwell: keep trying, do not die
                self._logger.error("worker.lease_failed", error=str(exc))
                nap = self._poll_interval
            if nap is not None:
                self.napping = True
                try:
                    await self._waker.nap(self._clock, nap)
                finally:
                    self.napping = False

    async def _lease_due(self) -> float | None:
        """Lease what is due; answer how long to nap, or None to lease again at once."""
        allowed = self.concurrency()
        room = min(allowed - len(self._running), self._batch)
        # A finishing job wakes the loop. Leasing waits until a quarter of the
        # slots are free, so a busy worker leases in batches, not one
        # transaction per finished job.
        refill_at = max(1, min(allowed, self._batch) // 4)
        if room <= 0 or (self._running and room < refill_at):
            return self._poll_interval
        now = self._clock.now()
        lease = await self._writer.submit(LeaseJobs(self.owner, room, now, self._lease))
        if self._stopping:  # stopped while leasing: these must not start
            await self._release(list(lease.jobs))
            return None
        # Leased oldest first: the first job says how far behind the queue is.
        self._delay = (now - lease.jobs[0].due_at).total_seconds() if lease.jobs else 0.0
        for job in lease.jobs:
            task = asyncio.create_task(self._execute(job), name=f"job-{job.id}")
            self._running[task] = job
            task.add_done_callback(self._finished)
        if len(lease.jobs) == room:
            return None  # there may be more
        if lease.next_due is None:
            return self._poll_interval
        wait = (lease.next_due - self._clock.now()).total_seconds()
        return min(self._poll_interval, max(0.0, wait))

    def count(self, finish: FinishJob, kept: bool) -> None:
        """Count a recorded finish: its attempt, and the job's end when it ended."""
        kind = finish.kind or "unknown"
        if finish.record is not None and self._attempts is not None:
            self._attempts.labels(kind, finish.record.outcome).inc()
        if kept and finish.outcome in ("succeeded", "failed") and self._finished_jobs is not None:
            self._finished_jobs.labels(kind, finish.outcome).inc()

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        if not self._stopping:
            self._waker.wake()

    async def _execute(self, job: Job) -> None:
        handler = self._handlers.get(job.kind)
        result: Result
        started = self._clock.now()
        if handler is None:
            message = f"no handler for jobs of kind {job.kind!r}"
            result = Failed(
                message, attempt=AttemptRecord("no_handler", started, 0.0, None, message)
            )
        else:
            began = time.perf_counter()
            try:
                result = await handler.run(job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a handler bug must not lose the job
                self._logger.exception("worker.handler_crashed", job=job.id, kind=job.kind)
                message = f"{type(exc).__name__}: {exc}"
                crashed = AttemptRecord(
                    "crashed", started, time.perf_counter() - began, type(exc).__name__, str(exc)
                )
                result = Retry(self._retry_unexpected, message, attempt=crashed)
        await self._record(job, result)

    async def _record(self, job: Job, result: Result) -> None:
        finish = finish_for(job, result, self.owner, self._clock.now(), self._followers)
        try:
            kept = await self._writer.submit(finish)
        except Exception as exc:  # the lease will run out and the job run again
            self._logger.error("worker.record_failed", job=job.id, error=str(exc))
            return
        if not kept:
            self._logger.warning("worker.lease_lost", job=job.id)
        self.count(finish, kept)
        if finish.outcome in ("retry", "deferred"):
            self._waker.wake()
