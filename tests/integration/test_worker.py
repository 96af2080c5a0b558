"""Queue and workers on a real SQLite file, with a manual clock: no sleeping."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest

from engine.core.clock import ManualClock
from engine.jobs.kinds import Failed, Result, Retry, Succeeded
from engine.jobs.queue import FinishJob, Job, LeaseJobs, load_job
from tests.support.queue import QueueHarness, queue_harness, until


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[QueueHarness]:
    async with queue_harness(tmp_path) as running:
        yield running


@dataclass
class Scripted:
    """Answers each run of a key from a script; records every run with its time."""

    clock: ManualClock
    script: Callable[[str, int], Result]
    runs: list[tuple[str, int, float]] = field(default_factory=list)
    start: float | None = None

    async def run(self, job: Job) -> Result:
        key = job.payload["key"]
        at = self.clock.now().timestamp()
        self.start = self.start if self.start is not None else at
        self.runs.append((key, job.attempts, at - self.start))
        return self.script(key, job.attempts)


async def test_retries_follow_the_delays_then_succeed(harness: QueueHarness) -> None:
    def script(key: str, attempt: int) -> Result:
        return Succeeded() if attempt == 4 else Retry(delay=5.0 * attempt, error=f"boom {attempt}")

    handler = Scripted(harness.clock, script)
    worker = harness.worker(handler)
    worker.start()
    await harness.add("a")
    await until(lambda: len(handler.runs) == 4, harness.clock, worker)
    await worker.stop(grace=1)
    assert [attempt for _, attempt, _ in handler.runs] == [1, 2, 3, 4]
    gaps = [b[2] - a[2] for a, b in zip(handler.runs, handler.runs[1:], strict=False)]
    assert gaps == [5.0, 10.0, 15.0]
    job = await load_job(harness.database, 1)
    assert job is not None
    assert (job.state, job.attempts, job.last_error) == ("succeeded", 4, None)


async def test_attempts_run_out_and_the_job_stays_failed(harness: QueueHarness) -> None:
    handler = Scripted(harness.clock, lambda key, attempt: Retry(1.0, f"down {attempt}"))
    worker = harness.worker(handler)
    worker.start()
    await harness.add("a", max_attempts=3)
    await until(lambda: len(handler.runs) == 3, harness.clock, worker)
    finished_at = harness.clock.now()
    await asyncio.sleep(0.05)
    harness.clock.advance(3600)
    await asyncio.sleep(0.05)
    await worker.stop(grace=1)
    assert len(handler.runs) == 3
    job = await load_job(harness.database, 1)
    assert job is not None
    assert (job.state, job.attempts, job.last_error) == ("failed", 3, "down 3")
    assert job.finished_at == finished_at


async def test_failed_is_final(harness: QueueHarness) -> None:
    handler = Scripted(harness.clock, lambda key, attempt: Failed("gone"))
    worker = harness.worker(handler)
    worker.start()
    await harness.add("a")
    await until(lambda: len(handler.runs) == 1, harness.clock, worker)
    await asyncio.sleep(0.05)
    await worker.stop(grace=1)
    job = await load_job(harness.database, 1)
    assert job is not None
    assert (job.state, job.attempts) == ("failed", 1)


async def test_a_crashing_handler_is_retried_not_lost(harness: QueueHarness) -> None:
    def script(key: str, attempt: int) -> Result:
        if attempt == 1:
            raise RuntimeError("handler bug")
        return Succeeded()

    handler = Scripted(harness.clock, script)
    worker = harness.worker(handler, retry_unexpected=30.0)
    worker.start()
    await harness.add("a")
    await until(lambda: len(handler.runs) == 2, harness.clock, worker)
    await worker.stop(grace=1)
    assert handler.runs[1][2] - handler.runs[0][2] == 30.0
    job = await load_job(harness.database, 1)
    assert job is not None and job.state == "succeeded"


async def test_concurrency_is_bounded_and_every_job_runs_once(harness: QueueHarness) -> None:
    running = 0
    peak = 0
    seen: list[str] = []
    full = asyncio.Event()

    class Slow:
        async def run(self, job: Job) -> Result:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            if running == 4:
                full.set()
            with contextlib.suppress(TimeoutError):  # hold the slot until all 4 are busy
                await asyncio.wait_for(full.wait(), 1)
            await asyncio.sleep(0.001)
            running -= 1
            seen.append(job.payload["key"])
            return Succeeded()

    worker = harness.worker(Slow(), concurrency=4, batch=3)
    worker.start()
    await harness.add(*(f"k{i}" for i in range(40)))
    await until(lambda: len(seen) == 40, harness.clock, worker)
    await worker.stop(grace=1)
    assert sorted(seen) == sorted(f"k{i}" for i in range(40))
    assert peak == 4


async def test_stop_releases_unfinished_jobs_without_counting_the_attempt(
    harness: QueueHarness,
) -> None:
    started = asyncio.Event()

    class Hangs:
        async def run(self, job: Job) -> Result:
            started.set()
            await asyncio.sleep(3600)
            return Succeeded()

    worker = harness.worker(Hangs())
    worker.start()
    await harness.add("a")
    await asyncio.wait_for(started.wait(), 5)
    await worker.stop(grace=0.05)
    job = await load_job(harness.database, 1)
    assert job is not None
    assert (job.state, job.attempts, job.lease_owner) == ("pending", 0, None)


async def test_an_expired_lease_returns_the_job_and_fences_the_old_owner(
    harness: QueueHarness,
) -> None:
    await harness.add("a")
    now = harness.clock.now()
    (first,) = (await harness.writer.submit(LeaseJobs("dead", 10, now, timedelta(seconds=30)))).jobs
    none = await harness.writer.submit(LeaseJobs("other", 10, now, timedelta(seconds=30)))
    assert none.jobs == []
    assert none.next_due == now + timedelta(seconds=30), "the lease's expiry is next"
    harness.clock.advance(31)
    later = harness.clock.now()
    lease = await harness.writer.submit(LeaseJobs("alive", 10, later, timedelta(seconds=30)))
    (again,) = lease.jobs
    assert (again.id, again.attempts, again.lease_owner) == (first.id, 2, "alive")
    assert not await harness.writer.submit(FinishJob(first.id, "dead", "succeeded", later))
    assert await harness.writer.submit(FinishJob(first.id, "alive", "succeeded", later))
    job = await load_job(harness.database, first.id)
    assert job is not None and job.state == "succeeded"


async def test_an_unknown_kind_fails_with_a_reason(harness: QueueHarness) -> None:
    worker = harness.worker(Scripted(harness.clock, lambda k, a: Succeeded()))
    worker.start()
    await harness.add("a", kind="mystery")
    job: Job | None = None

    async def failed() -> bool:
        nonlocal job
        job = await load_job(harness.database, 1)
        return job is not None and job.state == "failed"

    for _ in range(400):
        if await failed():
            break
        await asyncio.sleep(0.005)
    await worker.stop(grace=1)
    assert job is not None
    assert job.last_error == "no handler for jobs of kind 'mystery'"


async def test_a_job_longer_than_its_lease_is_not_run_twice(harness: QueueHarness) -> None:
    release = asyncio.Event()
    runs = 0

    class Long:
        async def run(self, job: Job) -> Result:
            nonlocal runs
            runs += 1
            await release.wait()
            return Succeeded()

    worker = harness.worker(Long(), lease=timedelta(seconds=30), poll_interval=1.0)
    worker.start()
    await harness.add("a")
    await until(lambda: runs == 1, harness.clock, worker)
    for _ in range(40):  # 200 s on the clock: the heartbeat keeps renewing the 30 s lease
        harness.clock.advance(5)
        await asyncio.sleep(0.01)
    assert runs == 1, "never leased again while it runs"
    release.set()
    job = await _until_state(harness, 1, "succeeded")
    await worker.stop(grace=1)
    assert (job.attempts, job.lease_owner) == (1, None)


async def _until_state(harness: QueueHarness, job_id: int, state: str) -> Job:
    for _ in range(500):
        job = await load_job(harness.database, job_id)
        if job is not None and job.state == state:
            return job
        await asyncio.sleep(0.01)
    raise AssertionError(f"job {job_id} never reached {state}")


async def test_under_ingest_load_the_worker_steps_back_and_then_catches_up(
    harness: QueueHarness,
) -> None:
    load = True
    running = 0
    peaks: dict[bool, int] = {True: 0, False: 0}
    seen: list[str] = []

    class Counting:
        async def run(self, job: Job) -> Result:
            nonlocal running
            running += 1
            peaks[load] = max(peaks[load], running)
            await asyncio.sleep(0.002)
            running -= 1
            seen.append(job.payload["key"])
            return Succeeded()

    worker = harness.worker(
        Counting(), concurrency=8, batch=8, under_load=lambda: load, concurrency_under_load=2
    )
    assert worker.concurrency() == 2
    worker.start()
    await harness.add(*(f"k{i}" for i in range(30)))
    await until(lambda: len(seen) >= 10, harness.clock, worker)
    load = False
    assert worker.concurrency() == 8
    await until(lambda: len(seen) == 30, harness.clock, worker)
    await worker.stop(grace=1)
    assert sorted(seen) == sorted(f"k{i}" for i in range(30))
    assert peaks[True] == 2
    assert peaks[False] > 2


async def test_under_load_jobs_that_fell_too_far_behind_run_at_full_concurrency(
    harness: QueueHarness,
) -> None:
    running = 0
    peak = 0
    seen: list[str] = []

    class Counting:
        async def run(self, job: Job) -> Result:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.002)
            running -= 1
            seen.append(job.payload["key"])
            return Succeeded()

    worker = harness.worker(
        Counting(),
        concurrency=8,
        batch=8,
        under_load=lambda: True,
        concurrency_under_load=2,
        max_delay_under_load=30.0,
    )
    await harness.add(*(f"k{i}" for i in range(30)))
    harness.clock.advance(60)  # the jobs have waited a minute: past the bound
    worker.start()
    await until(lambda: len(seen) == 30, harness.clock, worker)
    await worker.stop(grace=1)
    assert peak > 2
