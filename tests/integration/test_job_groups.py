"""Job groups on a real SQLite file: held groups wait, ordered jobs run one at a time in order."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, insert, select, update
from sqlalchemy.engine import Connection

from engine.core.clock import ManualClock
from engine.core.schema import job_holds, jobs, metadata
from engine.jobs.actions import RetryNow, recover_failed
from engine.jobs.groups import hold_group, release_group
from engine.jobs.kinds import Deferred, Failed, Result, Retry, Succeeded
from engine.jobs.queue import (
    FinishJob,
    Job,
    LeaseJobs,
    NewJob,
    Outcome,
    insert_jobs,
    load_job,
    next_due,
)
from tests.support.queue import QueueHarness, queue_harness, until


@pytest.fixture
async def groups(tmp_path: Path) -> AsyncIterator[QueueHarness]:
    async with queue_harness(tmp_path) as running:
        yield running


@dataclass
class Script:
    clock: ManualClock
    fail: dict[str, int]
    runs: list[tuple[str, int, float]] = field(default_factory=list)
    done: list[str] = field(default_factory=list)

    async def run(self, job: Job) -> Result:
        key = job.payload["key"]
        self.runs.append((key, job.attempts, self.clock.now().timestamp()))
        if self.fail.get(key, 0) >= job.attempts:
            return Retry(5.0, f"down {job.attempts}")
        self.done.append(key)
        return Succeeded()


async def test_ordered_jobs_wait_for_the_earlier_one_to_finish(groups: QueueHarness) -> None:
    handler = Script(groups.clock, fail={"a": 2})
    worker = groups.worker(handler)
    worker.start()
    await groups.add("a", "b", "c", ordered=True, group="g")
    await until(lambda: len(handler.done) == 3, groups.clock, worker)
    await worker.stop(grace=1)
    assert handler.done == ["a", "b", "c"]
    assert [(key, attempt) for key, attempt, _ in handler.runs] == [
        ("a", 1),
        ("a", 2),
        ("a", 3),
        ("b", 1),
        ("c", 1),
    ]


async def _states(groups: QueueHarness) -> dict[str, str]:
    async with groups.database.connect() as conn:
        rows = await conn.execute(select(jobs.c.idempotency_key, jobs.c.state).order_by(jobs.c.id))
        return {key: state for key, state in rows}


async def test_ordered_jobs_behind_an_unfinished_one_wait_and_follow_it(
    groups: QueueHarness,
) -> None:
    await groups.add("a", "b", ordered=True, group="g")
    await groups.add("c", ordered=True, group="g")
    await groups.add("x", ordered=True, group="other")
    assert await _states(groups) == {"a": "pending", "b": "waiting", "c": "waiting", "x": "pending"}
    assert await next_due(groups.database, groups.clock.now()) == groups.clock.now()

    handler = Script(groups.clock, fail={"a": 1})
    worker = groups.worker(handler)
    worker.start()
    await until(lambda: len(handler.runs) == 3, groups.clock, worker)  # a twice, x
    await until(lambda: handler.done == ["x", "a"], groups.clock, worker)
    await until(lambda: len(handler.done) == 4, groups.clock, worker)
    await worker.stop(grace=1)
    assert handler.done == ["x", "a", "b", "c"]
    assert set((await _states(groups)).values()) == {"succeeded"}


async def test_an_ordered_job_that_fails_lets_the_next_one_run(groups: QueueHarness) -> None:
    handler = Script(groups.clock, fail={"a": 99})
    worker = groups.worker(handler)
    worker.start()
    await groups.add("a", "b", "c", max_attempts=2, ordered=True, group="g")
    await until(lambda: len(handler.done) == 2, groups.clock, worker)
    await worker.stop(grace=1)
    assert [(key, attempt) for key, attempt, _ in handler.runs] == [
        ("a", 1),
        ("a", 2),
        ("b", 1),
        ("c", 1),
    ]
    assert await _states(groups) == {"a": "failed", "b": "succeeded", "c": "succeeded"}


async def test_a_held_ordered_group_keeps_its_order_when_released(groups: QueueHarness) -> None:
    async with groups.database.begin() as conn:
        await conn.run_sync(hold_group, "g", "paused", groups.clock.now())
    await groups.add("a", "b", ordered=True, group="g")
    assert await _states(groups) == {"a": "held", "b": "waiting"}
    async with groups.database.begin() as conn:
        await conn.run_sync(release_group, "g")
    assert await _states(groups) == {"a": "pending", "b": "waiting"}
    handler = Script(groups.clock, fail={})
    worker = groups.worker(handler)
    worker.start()
    await until(lambda: len(handler.done) == 2, groups.clock, worker)
    await worker.stop(grace=1)
    assert handler.done == ["a", "b"]


async def test_a_pending_ordered_job_still_waits_for_earlier_waiting_ones(
    groups: QueueHarness,
) -> None:
    """As a manual retry or a database from before ``waiting`` may leave them."""
    await groups.add("a", "b", "c", "d", ordered=True, group="g")
    async with groups.database.begin() as conn:
        await conn.execute(
            update(jobs).where(jobs.c.idempotency_key == "d").values(state="pending")
        )
    handler = Script(groups.clock, fail={"a": 1})
    worker = groups.worker(handler)
    worker.start()
    await until(lambda: len(handler.done) == 4, groups.clock, worker)
    await worker.stop(grace=1)
    assert handler.done == ["a", "b", "c", "d"]


@pytest.mark.parametrize("seed", range(4))
async def test_ordered_groups_keep_their_order_whatever_their_jobs_do(
    groups: QueueHarness, seed: int
) -> None:
    """Jobs of three ordered groups, added in batches while the worker runs, each
    failing, retrying, deferring or giving up at random: a job starts only when
    every earlier job of its group has ended, and every job ends."""
    rng = random.Random(seed)
    ended: set[str] = set()
    order: dict[str, list[str]] = {}
    started: list[str] = []

    class Random:
        async def run(self, job: Job) -> Result:
            key, group = job.payload["key"], job.group_key
            assert group is not None
            earlier = order[group][: order[group].index(key)]
            assert set(earlier) <= ended, f"{key} started before {set(earlier) - ended} ended"
            started.append(key)
            await asyncio.sleep(rng.random() / 1000)
            roll = rng.random()
            if roll < 0.2:
                if job.attempts == job.max_attempts:
                    ended.add(key)
                return Retry(rng.choice((1.0, 30.0)), "down")
            if roll < 0.3:
                return Deferred(2.0)
            ended.add(key)
            return Failed("gone") if roll < 0.35 else Succeeded()

    worker = groups.worker(Random(), concurrency=4, batch=3)
    worker.start()
    count = 0
    for batch in range(6):
        group = f"g{batch % 3}"
        keys = [f"{group}-{count + i}" for i in range(rng.randint(1, 4))]
        count += len(keys)
        order.setdefault(group, []).extend(keys)
        await groups.add(*keys, max_attempts=3, ordered=True, group=group)
        await asyncio.sleep(rng.random() / 200)
    # Every job ended, and its outcome written (a job's task ends once its finish is
    # committed): a stop under load could otherwise put the last one back as pending.
    await until(lambda: len(ended) == count and worker.busy == 0, groups.clock, worker)
    await worker.stop(grace=1)
    states = await _states(groups)
    assert set(states.values()) <= {"succeeded", "failed"}
    assert len(states) == count and len(set(started)) == count


async def test_unordered_jobs_of_a_group_do_not_wait(groups: QueueHarness) -> None:
    handler = Script(groups.clock, fail={"a": 2})
    worker = groups.worker(handler)
    worker.start()
    await groups.add("a", "b", "c", group="g")
    await until(lambda: len(handler.done) == 3, groups.clock, worker)
    await worker.stop(grace=1)
    assert handler.done == ["b", "c", "a"]


async def test_a_held_group_holds_its_new_jobs_until_released(groups: QueueHarness) -> None:
    handler = Script(groups.clock, fail={})
    worker = groups.worker(handler)
    async with groups.database.begin() as conn:
        await conn.run_sync(hold_group, "g", "paused", groups.clock.now())
    worker.start()
    await groups.add("a", "b", group="g")
    await groups.add("free", group=None)
    await until(lambda: handler.done == ["free"], groups.clock, worker)
    groups.clock.advance(3600)
    await asyncio.sleep(0.05)
    assert handler.done == ["free"]
    assert await next_due(groups.database, groups.clock.now()) is None, "nothing leasable"
    held = await load_job(groups.database, 1)
    assert held is not None and (held.state, held.attempts) == ("held", 0)

    async with groups.database.begin() as conn:
        await conn.run_sync(release_group, "g")
    groups.waker.wake()
    await until(lambda: len(handler.done) == 3, groups.clock, worker)
    await worker.stop(grace=1)
    assert sorted(handler.done) == ["a", "b", "free"]
    async with groups.database.connect() as conn:
        assert (await conn.execute(select(job_holds))).all() == []


async def test_holding_takes_pending_jobs_aside_and_releasing_puts_them_back(
    groups: QueueHarness,
) -> None:
    await groups.add("a", "b", group="g")
    await groups.add("free", group=None)

    async def states() -> list[str]:
        found = [await load_job(groups.database, job_id) for job_id in (1, 2, 3)]
        return [job.state for job in found if job is not None]

    async with groups.database.begin() as conn:
        await conn.run_sync(hold_group, "g", "paused", groups.clock.now())
    assert await states() == ["held", "held", "pending"]
    async with groups.database.begin() as conn:
        await conn.run_sync(release_group, "g")
    assert await states() == ["pending", "pending", "pending"]


async def test_holding_twice_keeps_one_hold_with_the_latest_reason(groups: QueueHarness) -> None:
    async with groups.database.begin() as conn:
        await conn.run_sync(hold_group, "g", "paused", groups.clock.now())
        await conn.run_sync(hold_group, "g", "disabled", groups.clock.now())
    async with groups.database.connect() as conn:
        rows = (await conn.execute(select(job_holds.c.group_key, job_holds.c.reason))).all()
    assert [tuple(row) for row in rows] == [("g", "disabled")]


@dataclass
class Recording:
    calls: list[tuple[str, bool]] = field(default_factory=list)
    commits: int = 0

    @classmethod
    def apply_all(cls, conn: Connection, finished: Sequence[tuple[FinishJob, bool]]) -> None:
        for finish, kept in finished:
            assert isinstance(finish.hook, Recording)
            finish.hook.calls.append((finish.outcome, kept))

    def committed(self) -> None:
        self.commits += 1


async def test_a_deferred_job_runs_later_without_counting_the_attempt(groups: QueueHarness) -> None:
    hook = Recording()
    runs: list[tuple[int, float]] = []

    class Limited:
        async def run(self, job: Job) -> Result:
            runs.append((job.attempts, groups.clock.now().timestamp()))
            if len(runs) == 1:
                return Deferred(2.0, hook=hook)
            return Succeeded(hook=hook)

    worker = groups.worker(Limited())
    worker.start()
    await groups.add("a", group="g")
    await until(lambda: len(hook.calls) == 2, groups.clock, worker)
    await worker.stop(grace=1)
    assert [attempt for attempt, _ in runs] == [1, 1]
    assert runs[1][1] - runs[0][1] == 2.0
    assert hook.calls == [("deferred", True), ("succeeded", True)]
    assert hook.commits == 2
    job = await load_job(groups.database, 1)
    assert job is not None and (job.state, job.attempts) == ("succeeded", 1)


def test_earlier_ordered_jobs_are_looked_up_in_their_partial_index(tmp_path: Path) -> None:
    """The statements as sent, parameters bound: SQLite uses a partial index only for
    a query that repeats its WHERE, so a group's history is never walked."""
    engine = create_engine(f"sqlite:///{tmp_path}/plan.db")
    metadata.create_all(engine)
    sent: list[tuple[str, Any]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def keep(*args: Any) -> None:
        _, _, statement, parameters, _, many = args
        if not many and (" AS earlier" in statement or " AS waiting" in statement):
            sent.append((statement, parameters))

    now = ManualClock().now()
    new = [NewJob("test", {}, key, 3, now, group_key="g", ordered=True) for key in ("a", "b")]
    done = {"kind": "test", "payload": {}, "state": "succeeded", "due_at": now, "attempts": 1}
    done |= {"max_attempts": 3, "created_at": now, "updated_at": now}
    done |= {"group_key": "g", "ordered": True}
    with engine.begin() as conn:  # a history, which other indexes cover too
        conn.execute(insert(jobs), [done | {"idempotency_key": f"h{i}"} for i in range(2000)])
    with engine.begin() as conn:
        insert_jobs(conn, new, now)
        [lease] = LeaseJobs.apply_all(conn, [LeaseJobs("w", 10, now, timedelta(seconds=60))])
        assert [job.idempotency_key for job in lease.jobs] == ["a"]
        FinishJob.apply_all(conn, [FinishJob(lease.jobs[0].id, "w", "succeeded", now)])
        assert conn.scalar(select(jobs.c.state).where(jobs.c.idempotency_key == "b")) == "pending"
    event.remove(engine, "before_cursor_execute", keep)
    # Waiting at the insert, the lease, the next due time, the promotion at the finish.
    assert [statement.split()[0] for statement, _ in sent] == [
        "UPDATE",
        "UPDATE",
        "SELECT",
        "UPDATE",
    ]
    with engine.connect() as conn:
        for statement, parameters in sent:
            explained = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            plan = [row[-1] for row in explained]
            lookups = [step for step in plan if step.split()[1] in ("earlier", "waiting")]
            assert lookups, plan
            assert all("USING INDEX ix_jobs_ordered_unfinished" in step for step in lookups), plan
    engine.dispose()


async def _lease(groups: QueueHarness, owner: str = "w") -> list[Job]:
    now = groups.clock.now()
    lease = await groups.writer.submit(LeaseJobs(owner, 10, now, timedelta(seconds=60)))
    return list(lease.jobs)


async def _finish(groups: QueueHarness, job: Job, outcome: Outcome, owner: str = "w") -> None:
    now = groups.clock.now()
    write = FinishJob(job.id, owner, outcome, now, due_at=now, error="x", attempt=job.attempts)
    assert await groups.writer.submit(write)


@pytest.mark.parametrize("later_ends", ["succeeded", "retry", "expired"])
async def test_a_recovered_or_retried_ordered_job_waits_for_a_later_one_in_flight(
    groups: QueueHarness, later_ends: str
) -> None:
    """An ordered group's jobs run one at a time, operators' actions included: the
    re-opened job waits for the one running, then runs before it runs again."""
    await groups.add("a", "b", ordered=True, group="g", max_attempts=1)
    (a,) = await _lease(groups)
    await _finish(groups, a, "failed")  # b may run now
    (b,) = await _lease(groups)
    assert (await _states(groups)) == {"a": "failed", "b": "running"}

    now = groups.clock.now()
    refused = await groups.writer.submit(RetryNow(a.id, "api", now, timedelta(seconds=60)))
    assert (refused.job, refused.refused, refused.behind) == (None, "waiting", b.id)
    recovered = await recover_failed(groups.writer, groups.waker.wake, "g", now, None, now)
    assert recovered == 1
    assert await _states(groups) == {"a": "waiting", "b": "running"}
    assert await _lease(groups, "other") == []  # not beside b

    if later_ends == "expired":
        groups.clock.advance(61)  # the engine running b died: its lease runs out
    else:
        await _finish(groups, b, later_ends)  # type: ignore[arg-type]
    leased = await _lease(groups)
    assert [job.idempotency_key for job in leased] == ["a"]  # before b, if b runs again
    if later_ends != "succeeded":
        assert (await _states(groups))["b"] == "pending"
