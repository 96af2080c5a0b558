"""What an operator does to deliveries: send a test now, attempt one now.

A test delivery and a manual retry are attempted inside the API request, so
the caller sees the attempt: the queue leases the job to a one-off owner in
the write that creates or re-opens it (``engine.jobs.actions``), it is sent
through the handler the workers use, and finished through the same path (its
attempt logged with its outcome). A failed manual attempt falls back to the
delivery's retry policy like any other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Self

from sqlalchemy.engine import Connection

from dsl import RuleSet
from engine.capability import Services
from engine.core.writer import BatchWrite
from engine.events.bus import Bus, StoredEvent
from engine.events.ids import new_event_id
from engine.jobs.actions import start_now
from engine.jobs.kinds import AttemptRecord
from engine.jobs.queue import Job
from engine.jobs.worker import finish_for
from engine.webhooks.handler import WebhookHandler
from engine.webhooks.planner import WebhookPlanner

__all__ = ["TEST_EVENT", "StartTest", "attempt_now", "attempt_view", "test_event"]

TEST_EVENT = "webhook.test"


def test_event(webhook: str, requested_by: str, now: datetime) -> StoredEvent:
    """A ``webhook.test`` event for ``webhook``, as the catalog describes it."""
    data = {"webhook": webhook, "requested_by": requested_by, "sent_at": now.isoformat()}
    return StoredEvent(new_event_id(), TEST_EVENT, data, now, now, source="ownly", assigned_id=True)


@dataclass(frozen=True)
class StartTest(BatchWrite[Job]):
    """Store a test event (not matched: it goes to one webhook) and its one delivery,
    leased for an attempt now."""

    bus: Bus
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
            write.bus.emit(conn, [write.event], write.rules, plan=False)
            delivery = write.planner.delivery(write.rules, write.webhook, write.event)
            now = write.event.received_at
            results.extend(start_now(conn, [delivery], write.owner, now, write.lease))
        return results


async def attempt_now(
    job: Job, owner: str, handler: WebhookHandler, services: Services, now: datetime
) -> tuple[AttemptRecord, str]:
    """Send the leased ``job`` once and finish it; the attempt and the job's new state."""
    result = await handler.send(job)
    finish = finish_for(job, result, owner, now, services.followers)
    await services.writer.submit(finish)
    if result.attempt is None:
        raise TypeError("a webhook attempt finishes with its record")
    state = {"succeeded": "succeeded", "failed": "failed"}.get(finish.outcome, "pending")
    return result.attempt, state


def attempt_view(record: AttemptRecord) -> dict[str, Any]:
    """A webhook attempt as the webhooks API shows it: flat, its detail beside the rest."""
    detail = dict(record.detail)
    # A body over the attempt log's cap was cut there (engine.jobs.attempts.capped).
    note = detail.get("truncated")
    cut = isinstance(note, dict) and "response_body" in [*note["cut"], *note["dropped"]]
    return {
        "outcome": record.outcome,
        "started_at": record.started_at,
        "duration": record.duration,
        "status": detail.get("status"),
        "response_headers": detail.get("response_headers", []),
        "response_body": detail.get("response_body", ""),
        "response_body_truncated": bool(detail.get("response_body_truncated")) or cut,
        "retry_after": detail.get("retry_after"),
        "error_class": record.error_class,
        "error_message": record.error_message,
    }
