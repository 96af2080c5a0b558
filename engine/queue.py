"""The job queue: durable jobs in the database, leased by workers, finished or rescheduled.

A job moves ``pending -> running -> succeeded | pending (retry) | failed``, or
to ``cancelled``. Leasing marks it ``running`` for one owner until a deadline;
a lease that runs out (the engine died) puts the job back to ``pending``.

Jobs may belong to a group (``group_key``, e.g. one webhook's deliveries). A
held group's pending jobs stay pending and are not leased until it is released;
an ``ordered`` job is not leased while an earlier job of its group is still
pending or running, so a group's ordered jobs run one at a time, in id order.
Finishing is fenced by the lease owner, so a worker whose lease was taken over
cannot overwrite the newer attempt's outcome. Every change goes through the
``Writer``; reads use their own connections.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, Self

from sqlalchemy import (
    ColumnElement,
    and_,
    bindparam,
    delete,
    exists,
    false,
    func,
    insert,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.schema import job_holds, jobs
from engine.storage import Database
from engine.writer import BatchWrite

__all__ = [
    "FinishHook",
    "FinishJob",
    "Job",
    "JobState",
    "LeaseJobs",
    "NewJob",
    "hold_group",
    "insert_jobs",
    "leasable",
    "load_job",
    "next_due",
    "release_group",
]

JobState = Literal["pending", "running", "succeeded", "failed", "cancelled"]


@dataclass(frozen=True)
class NewJob:
    """A job to create, in the same transaction as whatever caused it."""

    kind: str
    payload: dict[str, Any]
    idempotency_key: str
    max_attempts: int
    due_at: datetime
    event_id: str | None = None
    rule_set: str | None = None
    group_key: str | None = None
    ordered: bool = False


@dataclass(frozen=True)
class Job:
    """A job as stored."""

    id: int
    kind: str
    payload: dict[str, Any]
    state: JobState
    due_at: datetime
    attempts: int
    max_attempts: int
    idempotency_key: str
    event_id: str | None
    rule_set: str | None
    last_error: str | None
    lease_owner: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    group_key: str | None = None
    ordered: bool = False

    @classmethod
    def from_row(cls, row: Row[Any]) -> Job:
        return cls(**{name: getattr(row, name) for name in cls.__dataclass_fields__})

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


async def insert_jobs(conn: AsyncConnection, new: Sequence[NewJob], now: datetime) -> None:
    """Insert ``new`` jobs as ``pending`` (one statement)."""
    if not new:
        return
    await conn.execute(
        insert(jobs),
        [
            {
                "kind": job.kind,
                "payload": job.payload,
                "state": "pending",
                "due_at": job.due_at,
                "attempts": 0,
                "max_attempts": job.max_attempts,
                "idempotency_key": job.idempotency_key,
                "event_id": job.event_id,
                "rule_set": job.rule_set,
                "group_key": job.group_key,
                "ordered": job.ordered,
                "created_at": now,
                "updated_at": now,
            }
            for job in new
        ],
    )


@dataclass(frozen=True)
class LeaseJobs(BatchWrite[list[Job]]):
    """Lease up to ``limit`` due jobs to ``owner`` until ``now + lease``."""

    owner: str
    limit: int
    now: datetime
    lease: timedelta

    @classmethod
    async def apply_all(cls, conn: AsyncConnection, writes: Sequence[Self]) -> list[list[Job]]:
        results = []
        for write in writes:
            await _expire_leases(conn, write.now)
            due = (
                select(jobs.c.id)
                .where(leasable(), jobs.c.due_at <= write.now)
                .order_by(jobs.c.due_at, jobs.c.id)
                .limit(write.limit)
                .scalar_subquery()
            )
            rows = await conn.execute(
                update(jobs)
                .where(jobs.c.id.in_(due))
                .values(
                    state="running",
                    lease_owner=write.owner,
                    lease_expires_at=write.now + write.lease,
                    attempts=jobs.c.attempts + 1,
                    updated_at=write.now,
                )
                .returning(*jobs.c)
            )
            leased = sorted((Job.from_row(row) for row in rows), key=lambda j: (j.due_at, j.id))
            results.append(leased)
        return results


def leasable() -> ColumnElement[bool]:
    """Pending, not in a held group, and (when ordered) first of its group still to run."""
    earlier = jobs.alias("earlier")
    waits = exists().where(
        earlier.c.group_key == jobs.c.group_key,
        earlier.c.id < jobs.c.id,
        earlier.c.state.in_(("pending", "running")),
    )
    held = exists().where(job_holds.c.group_key == jobs.c.group_key)
    return and_(jobs.c.state == "pending", not_(held), or_(jobs.c.ordered == false(), not_(waits)))


async def hold_group(conn: AsyncConnection, group_key: str, reason: str, now: datetime) -> None:
    """Keep the group's pending jobs pending, unleased, until ``release_group``."""
    held = await conn.scalar(
        select(job_holds.c.group_key).where(job_holds.c.group_key == group_key)
    )
    if held is None:
        await conn.execute(
            insert(job_holds).values(group_key=group_key, reason=reason, held_at=now)
        )
    else:
        await conn.execute(
            update(job_holds).where(job_holds.c.group_key == group_key).values(reason=reason)
        )


async def release_group(conn: AsyncConnection, group_key: str) -> None:
    """Let the group's jobs be leased again."""
    await conn.execute(delete(job_holds).where(job_holds.c.group_key == group_key))


async def _expire_leases(conn: AsyncConnection, now: datetime) -> None:
    """Jobs whose lease ran out go back to ``pending``; the lost attempt still counts."""
    await conn.execute(
        update(jobs)
        .where(jobs.c.state == "running", jobs.c.lease_expires_at <= now)
        .values(state="pending", lease_owner=None, lease_expires_at=None, updated_at=now)
    )


Outcome = Literal["succeeded", "retry", "failed", "released", "deferred"]


class FinishHook(Protocol):
    """More to write in the transaction that finishes a job (its kind's own records)."""

    async def apply(self, conn: AsyncConnection, finish: FinishJob, kept: bool) -> None:
        """Write on ``conn``; ``kept`` is False when the lease was lost meanwhile."""

    def committed(self) -> None:
        """Called once the finish is committed."""


@dataclass(frozen=True)
class FinishJob(BatchWrite[bool]):
    """Record how a leased job ended; answers False when the lease was lost meanwhile.

    ``retry`` puts it back to ``pending`` at ``due_at``; ``released`` returns an
    unstarted job (shutdown) without counting the attempt; ``deferred`` does the
    same but not before ``due_at`` (the job did not start: a rate limit, say).
    """

    job_id: int
    owner: str
    outcome: Outcome
    now: datetime
    due_at: datetime | None = None
    error: str | None = None
    hook: FinishHook | None = None

    @classmethod
    async def apply_all(cls, conn: AsyncConnection, writes: Sequence[Self]) -> list[bool]:
        results = []
        for write in writes:
            values: dict[str, Any] = {
                "lease_owner": None,
                "lease_expires_at": None,
                "updated_at": write.now,
                "last_error": write.error,
            }
            if write.outcome == "succeeded":
                values |= {"state": "succeeded", "finished_at": write.now, "last_error": None}
            elif write.outcome == "failed":
                values |= {"state": "failed", "finished_at": write.now}
            elif write.outcome == "retry":
                values |= {"state": "pending", "due_at": write.due_at or write.now}
            else:
                values = {
                    "state": "pending",
                    "lease_owner": None,
                    "lease_expires_at": None,
                    "attempts": jobs.c.attempts - 1,
                    "updated_at": write.now,
                }
                if write.outcome == "deferred":
                    values["due_at"] = write.due_at or write.now
            result = await conn.execute(
                update(jobs)
                .where(
                    and_(
                        jobs.c.id == bindparam("job_id"),
                        jobs.c.lease_owner == write.owner,
                        jobs.c.state == "running",
                    )
                )
                .values(values),
                {"job_id": write.job_id},
            )
            kept = result.rowcount == 1
            if write.hook is not None:
                await write.hook.apply(conn, write, kept)
            results.append(kept)
        return results

    def committed(self, result: bool) -> None:
        if self.hook is not None:
            self.hook.committed()


async def next_due(database: Database, now: datetime) -> datetime | None:
    """When the next leasable job is due (the past when one is waiting), or None."""
    async with database.connect() as conn:
        pending = await conn.scalar(
            select(jobs.c.due_at).where(leasable()).order_by(jobs.c.due_at).limit(1)
        )
        expiry = await conn.scalar(
            select(func.min(jobs.c.lease_expires_at)).where(jobs.c.state == "running")
        )
    candidates = [at for at in (pending, expiry) if at is not None]
    return min(candidates) if candidates else None


async def load_job(database: Database, job_id: int) -> Job | None:
    async with database.connect() as conn:
        row = (await conn.execute(select(jobs).where(jobs.c.id == job_id))).first()
    return Job.from_row(row) if row is not None else None
