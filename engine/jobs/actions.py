"""What an operator does to jobs: attempt one now, start a new one now, recover failed ones.

These are the queue's writes for the API, of any kind: a manual retry and a
test send are leased to a one-off owner in the write that re-opens or creates
the job, so the request can make the attempt itself and finish it through the
same path as the workers (its attempt logged with its outcome). A group's
order holds: a job of an ordered group is not attempted ahead of an earlier
unfinished one or beside one running now, and a held group's jobs are not
attempted at all.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, NamedTuple, Self

from sqlalchemy import and_, case, exists, select, update
from sqlalchemy.engine import Connection

from engine.core.schema import job_holds, jobs
from engine.core.writer import BatchWrite, Writer, after_commit
from engine.jobs.groups import must_wait_for
from engine.jobs.queue import Job, NewJob, insert_jobs

__all__ = [
    "RECOVER_BATCH",
    "Reopened",
    "RetryNow",
    "cancel_jobs",
    "one_off_owner",
    "recover_failed",
    "start_now",
]

RECOVER_BATCH = 500


def one_off_owner() -> str:
    """A lease owner for one attempt made outside the workers."""
    return f"api-{secrets.token_hex(6)}"


def _leased(owner: str, now: datetime, lease: timedelta) -> dict[str, object]:
    """The values that lease a job to ``owner`` for one more attempt, allowed even when
    its attempts were used up."""
    return {
        "state": "running",
        "lease_owner": owner,
        "lease_expires_at": now + lease,
        "attempts": jobs.c.attempts + 1,
        "max_attempts": _one_more(),
        "finished_at": None,
        "updated_at": now,
    }


def _one_more() -> Any:
    return case(
        (jobs.c.max_attempts > jobs.c.attempts, jobs.c.max_attempts),
        else_=jobs.c.attempts + 1,
    )


class Reopened(NamedTuple):
    """A job leased for an attempt now, or why it was not."""

    job: Job | None
    refused: Literal["running", "held", "waiting"] | None = None
    reason: str | None = None  # why its group is held (paused, disabled)
    behind: int | None = None  # the job of its ordered group it waits for


_BEHIND = jobs.alias("behind")


@dataclass(frozen=True)
class RetryNow(BatchWrite[Reopened]):
    """Lease one job for an attempt now, unless it is running, its group is held, or it
    must wait for another job of its ordered group (an earlier unfinished one, or one
    running now)."""

    job_id: int
    owner: str
    now: datetime
    lease: timedelta

    @classmethod
    def apply_all(cls, conn: Connection, writes: Sequence[Self]) -> list[Reopened]:
        return [write._apply(conn) for write in writes]

    def _apply(self, conn: Connection) -> Reopened:
        row = conn.execute(
            select(jobs.c.state, jobs.c.group_key, jobs.c.ordered).where(jobs.c.id == self.job_id)
        ).first()
        if row is None:
            return Reopened(None)
        if row.state == "running":
            return Reopened(None, "running")
        if row.group_key is not None:
            held = conn.scalar(
                select(job_holds.c.reason).where(job_holds.c.group_key == row.group_key)
            )
            if held is not None:
                return Reopened(None, "held", reason=held)
            if row.ordered:
                behind = conn.scalar(
                    select(_BEHIND.c.id)
                    .where(
                        _BEHIND.c.group_key == row.group_key,
                        _BEHIND.c.id != self.job_id,
                        must_wait_for(_BEHIND, self.job_id),
                    )
                    .order_by(_BEHIND.c.id)
                    .limit(1)
                )
                if behind is not None:
                    return Reopened(None, "waiting", behind=behind)
        leased = conn.execute(
            update(jobs)
            .where(jobs.c.id == self.job_id, jobs.c.state != "running")
            .values(_leased(self.owner, self.now, self.lease))
            .returning(*jobs.c)
        ).first()
        return Reopened(Job.from_row(leased) if leased is not None else None)


def start_now(
    conn: Connection, new: Sequence[NewJob], owner: str, now: datetime, lease: timedelta
) -> list[Job]:
    """Create jobs and lease them to ``owner`` for an attempt now (a test send), inside
    the caller's write (which stores what they refer to first)."""
    insert_jobs(conn, new, now)
    return [
        Job.from_row(
            conn.execute(
                update(jobs)
                .where(jobs.c.idempotency_key == job.idempotency_key)
                .values(_leased(owner, now, lease))
                .returning(*jobs.c)
            ).one()
        )
        for job in new
    ]


@dataclass(frozen=True)
class _RecoverBatch(BatchWrite[int]):
    group_key: str
    since: datetime
    until: datetime | None
    now: datetime
    wake: Any

    @classmethod
    def apply_all(cls, conn: Connection, writes: Sequence[Self]) -> list[int]:
        return [write._apply(conn) for write in writes]

    def _apply(self, conn: Connection) -> int:
        query = (
            select(jobs.c.id)
            .where(
                jobs.c.group_key == self.group_key,
                jobs.c.state == "failed",
                jobs.c.created_at >= self.since,
            )
            .order_by(jobs.c.id)
            .limit(RECOVER_BATCH)
        )
        if self.until is not None:
            query = query.where(jobs.c.created_at < self.until)
        ids = list(conn.scalars(query))
        if not ids:
            return 0
        held = exists().where(job_holds.c.group_key == jobs.c.group_key)
        # Pending (held in a held group) with one more attempt; an ordered one
        # waits its turn behind an earlier unfinished job of its group, and for
        # a later one running now.
        conn.execute(
            update(jobs)
            .where(jobs.c.id.in_(ids))
            .values(
                state=case((held, "held"), else_="pending"),
                due_at=self.now,
                finished_at=None,
                updated_at=self.now,
                max_attempts=_one_more(),
            )
        )
        behind = jobs.alias("behind")
        conn.execute(
            update(jobs)
            .where(
                jobs.c.id.in_(ids),
                jobs.c.ordered,
                jobs.c.state == "pending",
                exists().where(
                    and_(
                        behind.c.group_key == jobs.c.group_key,
                        behind.c.id != jobs.c.id,
                        must_wait_for(behind, jobs.c.id),
                    )
                ),
            )
            .values(state="waiting")
        )
        after_commit(conn, self.wake)
        return len(ids)


async def recover_failed(
    writer: Writer,
    wake: Any,
    group_key: str,
    since: datetime,
    until: datetime | None,
    now: datetime,
) -> int:
    """Re-queue every failed job of the group created in ``[since, until)``, one more
    attempt each, in batches of ``RECOVER_BATCH``; answer how many."""
    total = 0
    while True:
        count = await writer.submit(_RecoverBatch(group_key, since, until, now, wake))
        total += count
        if count < RECOVER_BATCH:
            return total


_CANCELLABLE = ("pending", "held", "waiting")


def cancel_jobs(conn: Connection, caller: str, now: datetime) -> int:
    """Cancel the jobs not started yet whose caller begins with ``caller`` (a run's
    ``workflow:<run>:``); a running one ends as it will. How many were cancelled."""
    # A range, not LIKE: SQLite's LIKE ignores case and so cannot use the index.
    upper = caller[:-1] + chr(ord(caller[-1]) + 1)
    statement = (
        update(jobs)
        .where(jobs.c.caller >= caller, jobs.c.caller < upper, jobs.c.state.in_(_CANCELLABLE))
        .values(state="cancelled", finished_at=now, updated_at=now, last_error="cancelled")
    )
    return conn.execute(statement).rowcount
