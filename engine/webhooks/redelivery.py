"""What an operator does to deliveries: send a test now, retry one now, recover failed ones.

A test delivery and a manual retry are attempted inside the API request, so the
caller sees the attempt: the job is leased to a one-off owner in the write that
creates or re-opens it, sent through the same handler the workers use, and
finished through the same path (its attempt recorded with its outcome). A
failed manual attempt falls back to the delivery's retry policy like any other.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Self

from sqlalchemy import case, insert, select, update
from sqlalchemy.engine import Connection

from connectors.webhook import Attempt
from dsl import RuleSet
from engine.core.schema import events, job_holds, jobs
from engine.core.writer import BatchWrite, Writer
from engine.events.bus import StoredEvent
from engine.events.ingest import new_event_id
from engine.jobs.queue import Job, insert_jobs
from engine.jobs.worker import Waker, finish_for
from engine.webhooks.delivery import WebhookHandler, WebhookPlanner
from engine.webhooks.health import RecordAttempt, group_key

__all__ = [
    "RECOVER_BATCH",
    "TEST_EVENT",
    "Reopen",
    "StartTest",
    "attempt_now",
    "one_off_owner",
    "recover",
    "test_event",
]

TEST_EVENT = "webhook.test"
RECOVER_BATCH = 500


def _leased(owner: str, now: datetime, lease: timedelta) -> dict[str, object]:
    """The values that lease a job to ``owner`` for one more attempt, allowed even when
    its attempts were used up."""
    return {
        "state": "running",
        "lease_owner": owner,
        "lease_expires_at": now + lease,
        "attempts": jobs.c.attempts + 1,
        "max_attempts": case(
            (jobs.c.max_attempts > jobs.c.attempts, jobs.c.max_attempts),
            else_=jobs.c.attempts + 1,
        ),
        "finished_at": None,
        "updated_at": now,
    }


@dataclass(frozen=True)
class Reopen(BatchWrite[Job | None]):
    """Lease one delivery for an attempt now; None when it is running already."""

    job_id: int
    owner: str
    now: datetime
    lease: timedelta

    @classmethod
    def apply_all(cls, conn: Connection, writes: Sequence[Self]) -> list[Job | None]:
        results: list[Job | None] = []
        for write in writes:
            row = (
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id == write.job_id, jobs.c.state != "running")
                    .values(_leased(write.owner, write.now, write.lease))
                    .returning(*jobs.c)
                )
            ).first()
            results.append(Job.from_row(row) if row is not None else None)
        return results


def test_event(webhook: str, requested_by: str, now: datetime) -> StoredEvent:
    """A ``webhook.test`` event for ``webhook``, as the catalog describes it."""
    data = {"webhook": webhook, "requested_by": requested_by, "sent_at": now.isoformat()}
    return StoredEvent(new_event_id(), TEST_EVENT, data, now, now, source="ownly", assigned_id=True)


@dataclass(frozen=True)
class StartTest(BatchWrite[Job]):
    """Store a test event and its one delivery, leased for an attempt now."""

    planner: WebhookPlanner
    rules: RuleSet
    webhook: str
    event: StoredEvent
    owner: str
    lease: timedelta

    @classmethod
    def apply_all(cls, conn: Connection, writes: Sequence[Self]) -> list[Job]:
        results = []
        for write in writes:
            event, now = write.event, write.event.received_at
            conn.execute(insert(events).values(event.row(write.rules.version)))
            new = write.planner.delivery(write.rules, write.webhook, event)
            insert_jobs(conn, [new], now)
            row = (
                conn.execute(
                    update(jobs)
                    .where(jobs.c.idempotency_key == new.idempotency_key)
                    .values(_leased(write.owner, now, write.lease))
                    .returning(*jobs.c)
                )
            ).one()
            results.append(Job.from_row(row))
        return results


def one_off_owner() -> str:
    """A lease owner for one attempt made outside the workers."""
    return f"api-{secrets.token_hex(6)}"


async def attempt_now(
    job: Job, owner: str, handler: WebhookHandler, writer: Writer, now: datetime
) -> tuple[Attempt, str]:
    """Send the leased ``job`` once and finish it; the attempt and the job's new state."""
    result = await handler.send(job)
    finish = finish_for(job, result, owner, now)
    await writer.submit(finish)
    if not isinstance(result.hook, RecordAttempt):
        raise TypeError("a webhook attempt finishes with its record")
    state = {"succeeded": "succeeded", "failed": "failed"}.get(finish.outcome, "pending")
    return result.hook.attempt, state


@dataclass(frozen=True)
class _RecoverBatch(BatchWrite[int]):
    webhook: str
    since: datetime
    until: datetime | None
    now: datetime

    @classmethod
    def apply_all(cls, conn: Connection, writes: Sequence[Self]) -> list[int]:
        counts = []
        for write in writes:
            query = (
                select(jobs.c.id)
                .where(
                    jobs.c.group_key == group_key(write.webhook),
                    jobs.c.state == "failed",
                    jobs.c.created_at >= write.since,
                )
                .order_by(jobs.c.id)
                .limit(RECOVER_BATCH)
            )
            if write.until is not None:
                query = query.where(jobs.c.created_at < write.until)
            ids = list(conn.scalars(query))
            held = conn.scalar(
                select(job_holds.c.group_key).where(
                    job_holds.c.group_key == group_key(write.webhook)
                )
            )
            if ids:
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id.in_(ids))
                    .values(
                        state="pending" if held is None else "held",
                        due_at=write.now,
                        finished_at=None,
                        updated_at=write.now,
                        max_attempts=case(
                            (jobs.c.max_attempts > jobs.c.attempts, jobs.c.max_attempts),
                            else_=jobs.c.attempts + 1,
                        ),
                    )
                )
            counts.append(len(ids))
        return counts


async def recover(
    writer: Writer,
    waker: Waker,
    webhook: str,
    since: datetime,
    until: datetime | None,
    now: datetime,
) -> int:
    """Re-queue every failed delivery of ``webhook`` created in the window, one attempt
    each, in batches of ``RECOVER_BATCH``; how many."""
    total = 0
    while True:
        count = await writer.submit(_RecoverBatch(webhook, since, until, now))
        total += count
        if count:
            waker.wake()
        if count < RECOVER_BATCH:
            return total
