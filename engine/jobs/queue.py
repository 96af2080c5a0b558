"""The job queue: durable jobs in the database, leased by workers, finished or rescheduled.

A job moves ``pending -> running -> succeeded | pending (retry) | failed``, or
to ``cancelled``. Leasing marks it ``running`` for one owner until a deadline;
a lease that runs out (the engine died) puts the job back to ``pending``. A
job of a held group is ``held``, one of an ordered group behind an unfinished
one ``waiting`` (``engine.jobs.groups``). Finishing is fenced by the lease
owner, so a worker whose lease was taken over cannot overwrite the newer
attempt's outcome. Every change goes through the ``Writer``; reads use their
own connections.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, Literal, NamedTuple, Self

from sqlalchemy import (
    ColumnElement,
    Integer,
    and_,
    bindparam,
    exists,
    false,
    func,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Row

from engine.core.rows import insert_rows
from engine.core.schema import UTCDateTime, job_holds, jobs
from engine.core.storage import Database
from engine.core.writer import BatchWrite
from engine.jobs.attempts import log_attempts
from engine.jobs.groups import earlier_unfinished, place_in_groups, promote_waiting
from engine.jobs.kinds import AttemptRecord, Ended, FinishHook, Follower, caller_kind

__all__ = [
    "FinishJob",
    "Job",
    "JobState",
    "Lease",
    "LeaseJobs",
    "NewJob",
    "Outcome",
    "RenewLeases",
    "insert_jobs",
    "leasable",
    "load_job",
    "next_due",
]

JobState = Literal["pending", "held", "waiting", "running", "succeeded", "failed", "cancelled"]


class NewJob(NamedTuple):
    """A job to create, in the same transaction as whatever caused it (a tuple: one
    is made per job planned)."""

    kind: str
    payload: dict[str, Any]
    idempotency_key: str
    max_attempts: int
    due_at: datetime
    event_id: str | None = None
    rule_set: str | None = None
    group_key: str | None = None
    ordered: bool = False
    caller: str | None = None  # ``<kind>:<reference>``: that kind's follower hears of its end


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
    caller: str | None = None

    @classmethod
    def from_row(cls, row: Row[Any]) -> Job:
        # Each field looked up in the row's mapping (a Row's named attribute costs
        # 1.1 us; a lease reads a dozen jobs of 17 fields), passed by position.
        mapping = row._mapping
        return cls(*[mapping[name] for name in _JOB_FIELDS])

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


_JOB_FIELDS = tuple(f.name for f in fields(Job))  # in the order of Job's __init__


def insert_jobs(conn: Connection, new: Sequence[NewJob], now: datetime) -> None:
    """Insert ``new`` jobs as ``pending``, ``held`` in a held group, or ``waiting``
    when ordered behind an unfinished job of their group."""
    if not new:
        return
    insert_rows(
        conn,
        jobs,
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
                "caller": job.caller,
                "created_at": now,
                "updated_at": now,
            }
            for job in new
        ],
    )
    place_in_groups(conn, new)


@dataclass(frozen=True)
class Lease:
    """Jobs leased to one owner, and when the next job not leased now is due
    (None when nothing is, or when the lease is full: the worker leases again at once)."""

    jobs: list[Job]
    next_due: datetime | None


@dataclass(frozen=True)
class LeaseJobs(BatchWrite[Lease]):
    """Lease up to ``limit`` due jobs to ``owner`` until ``now + lease``.

    The answer also says when the next job is due, read in the same
    transaction, so an idle worker knows how long to nap without another query.
    """

    owner: str
    limit: int
    now: datetime
    lease: timedelta

    @classmethod
    def apply_all(cls, conn: Connection, writes: Sequence[Self]) -> list[Lease]:
        results = []
        for write in writes:
            expired = conn.execute(_EXPIRE, {"e_now": write.now}).all()
            groups = {row.group_key for row in expired if row.ordered and row.group_key}
            if groups:
                promote_waiting(conn, sorted(groups), write.now)
            rows = conn.execute(
                _LEASE,
                {
                    "l_now": write.now,
                    "l_limit": write.limit,
                    "l_owner": write.owner,
                    "l_until": write.now + write.lease,
                },
            )
            leased = sorted((Job.from_row(row) for row in rows), key=lambda j: (j.due_at, j.id))
            # A full lease is leased again at once: the next due time is not needed.
            full = len(leased) >= write.limit
            results.append(Lease(leased, None if full else _next_due(conn)))
        return results


@dataclass(frozen=True)
class RenewLeases(BatchWrite[int]):
    """Extend the leases ``owner`` holds on running jobs to ``until``; answers how many."""

    owner: str
    job_ids: tuple[int, ...]
    until: datetime
    now: datetime

    @classmethod
    def apply_all(cls, conn: Connection, writes: Sequence[Self]) -> list[int]:
        return [
            conn.execute(
                update(jobs)
                .where(
                    jobs.c.id.in_(write.job_ids),
                    jobs.c.lease_owner == write.owner,
                    jobs.c.state == "running",
                )
                .values(lease_expires_at=write.until, updated_at=write.now)
            ).rowcount
            for write in writes
        ]


def leasable() -> ColumnElement[bool]:
    """Pending, not in a held group, and (when ordered) first of its group still to run.

    Ordered jobs behind others are ``waiting``, not pending; the check of the
    earlier ones still holds the order of any that are pending (a manual
    retry, a database from before ``waiting``).
    """
    held = exists().where(job_holds.c.group_key == jobs.c.group_key)
    waits = earlier_unfinished()
    return and_(jobs.c.state == "pending", not_(held), or_(jobs.c.ordered == false(), not_(waits)))


# Statements the workers run all the time, built once (SQLAlchemy then reuses
# their compiled form without working out their cache key again).
_NOW = bindparam("e_now", type_=UTCDateTime())
# Jobs whose lease ran out go back to ``pending``; the lost attempt still counts.
_EXPIRE = (
    update(jobs)
    .where(jobs.c.state == "running", jobs.c.lease_expires_at <= _NOW)
    .values(state="pending", lease_owner=None, lease_expires_at=None, updated_at=_NOW)
    .returning(jobs.c.group_key, jobs.c.ordered)
)
_LEASE_NOW = bindparam("l_now", type_=UTCDateTime())
_DUE = (
    select(jobs.c.id)
    .where(leasable(), jobs.c.due_at <= _LEASE_NOW)
    .order_by(jobs.c.due_at, jobs.c.id)
    .limit(bindparam("l_limit", type_=Integer()))
    .scalar_subquery()
)
_LEASE = (
    update(jobs)
    .where(jobs.c.id.in_(_DUE), jobs.c.state == "pending")
    .values(
        state="running",
        lease_owner=bindparam("l_owner", type_=jobs.c.lease_owner.type),
        lease_expires_at=bindparam("l_until", type_=UTCDateTime()),
        attempts=jobs.c.attempts + 1,
        updated_at=_LEASE_NOW,
    )
    .returning(*jobs.c)
)
_NEXT_PENDING = select(jobs.c.due_at).where(leasable()).order_by(jobs.c.due_at).limit(1)
_NEXT_EXPIRY = select(func.min(jobs.c.lease_expires_at)).where(jobs.c.state == "running")


Outcome = Literal["succeeded", "retry", "failed", "released", "deferred"]


def _finish_values(outcome: Outcome) -> dict[str, Any]:
    """The columns an outcome sets, as bind parameters of ``_FINISH``."""
    now = bindparam("f_now", type_=UTCDateTime())
    cleared = {"lease_owner": None, "lease_expires_at": None, "updated_at": now}
    error = bindparam("f_error", type_=jobs.c.last_error.type)
    due = bindparam("f_due", type_=UTCDateTime())
    if outcome == "succeeded":
        return cleared | {"state": "succeeded", "finished_at": now, "last_error": None}
    if outcome == "failed":
        return cleared | {"state": "failed", "finished_at": now, "last_error": error}
    if outcome == "retry":
        return cleared | {"state": "pending", "due_at": due, "last_error": error}
    unstarted = cleared | {"state": "pending", "attempts": jobs.c.attempts - 1}
    return unstarted | {"due_at": due} if outcome == "deferred" else unstarted


_FINISH = update(jobs).where(
    jobs.c.id == bindparam("f_id", type_=jobs.c.id.type),
    jobs.c.lease_owner == bindparam("f_owner", type_=jobs.c.lease_owner.type),
    jobs.c.state == "running",
)


_FINISHES = {
    outcome: _FINISH.values(_finish_values(outcome))
    for outcome in ("succeeded", "retry", "failed", "released", "deferred")
}
_LEASES = select(
    jobs.c.id,
    jobs.c.kind,
    jobs.c.lease_owner,
    jobs.c.attempts,
    jobs.c.group_key,
    jobs.c.ordered,
    jobs.c.caller,
).where(jobs.c.id.in_(bindparam("ids", expanding=True)), jobs.c.state == "running")


@dataclass(frozen=True)
class FinishJob(BatchWrite[bool]):
    """Record how a leased job ended; answers False when the lease was lost meanwhile.

    ``retry`` puts it back to ``pending`` at ``due_at``; ``released`` returns an
    unstarted job (shutdown) without counting the attempt; ``deferred`` does the
    same but not before ``due_at`` (the job did not start: a rate limit, say).
    A group's finishes take one read and one statement per outcome. An ordered
    job that ends lets the next waiting job of its group run. A job with a
    ``caller`` that ends for good is told to the follower of the kind it
    names, in this transaction.
    """

    job_id: int
    owner: str
    outcome: Outcome
    now: datetime
    due_at: datetime | None = None
    error: str | None = None
    hook: FinishHook | None = None
    # The lease this finish belongs to: a job re-leased since (its attempts moved on)
    # is another run's to finish.
    attempt: int | None = None
    record: AttemptRecord | None = None  # the attempt's entry in the attempt log
    kind: str | None = None  # the job's kind, for the metrics
    followers: Mapping[str, Follower] | None = None  # by kind: who hears of a caller's job

    @classmethod
    def apply_all(cls, conn: Connection, writes: Sequence[Self]) -> list[bool]:
        ids = [write.job_id for write in writes]
        leases = {row.id: row for row in conn.execute(_LEASES, {"ids": ids})}
        kept: list[bool] = []
        by_outcome: dict[Outcome, list[dict[str, Any]]] = {}
        ended: dict[str, None] = {}  # ordered groups whose running job stops
        followed: dict[str, list[Ended]] = {}  # by the kind that asked for the job
        for write in writes:
            lease = leases.pop(write.job_id, None)
            lost = lease is None or (
                lease.lease_owner != write.owner or write.attempt not in (None, lease.attempts)
            )
            kept.append(not lost)
            if lease is None or lost:
                continue
            if lease.ordered and lease.group_key is not None:
                # Whatever the outcome, it runs no more: a job re-opened by an
                # operator may have waited for it (the order holds either way).
                ended[lease.group_key] = None
            if lease.caller is not None and write.outcome in ("succeeded", "failed"):
                end = Ended(
                    write.job_id,
                    lease.kind,
                    lease.caller,
                    "succeeded" if write.outcome == "succeeded" else "failed",
                    write.error,
                    write.record,
                    write.now,
                )
                followed.setdefault(caller_kind(lease.caller), []).append(end)
            by_outcome.setdefault(write.outcome, []).append(
                {
                    "f_id": write.job_id,
                    "f_owner": write.owner,
                    "f_now": write.now,
                    "f_error": write.error,
                    "f_due": write.due_at or write.now,
                }
            )
        for outcome, params in by_outcome.items():
            conn.execute(_FINISHES[outcome], params)
        if ended:
            promote_waiting(conn, list(ended), writes[0].now)
        log_attempts(conn, [(w.job_id, w.attempt, w.record) for w in writes if w.record])
        _apply_hooks(conn, list(zip(writes, kept, strict=True)))
        followers = writes[0].followers or {}
        for name, ends in followed.items():
            follower = followers.get(name)
            if follower is not None:
                follower.follow(conn, ends)
        return kept

    def committed(self, result: bool) -> None:
        if self.hook is not None:
            self.hook.committed()


def _apply_hooks(conn: Connection, finished: list[tuple[FinishJob, bool]]) -> None:
    by_kind: dict[type[FinishHook], list[tuple[FinishJob, bool]]] = {}
    for write, keep in finished:
        if write.hook is not None:
            by_kind.setdefault(type(write.hook), []).append((write, keep))
    for kind, items in by_kind.items():
        kind.apply_all(conn, items)


async def next_due(database: Database, now: datetime) -> datetime | None:
    """When the next leasable job is due (the past when one is waiting), or None."""
    async with database.connect() as conn:
        due: datetime | None = await conn.run_sync(_next_due)
    return due


def _next_due(conn: Connection) -> datetime | None:
    pending = conn.scalar(_NEXT_PENDING)
    expiry = conn.scalar(_NEXT_EXPIRY)
    candidates = [at for at in (pending, expiry) if at is not None]
    return min(candidates) if candidates else None


async def load_job(database: Database, job_id: int) -> Job | None:
    async with database.connect() as conn:
        row = (await conn.execute(select(jobs).where(jobs.c.id == job_id))).first()
    return Job.from_row(row) if row is not None else None
