"""Workflow runs in process: events of any type, runs and their steps read back."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from engine.core.clock import ManualClock
from engine.events.bus import AppendEvents, StoredEvent
from engine.runtime import Engine
from engine.workflows.tables import workflow_runs, workflow_steps
from tests.support.inprocess import delivery_jobs

FINISHED = ("completed", "failed", "cancelled", "timed_out")


def signed(document_id: str, signer: str = "usr_1") -> dict[str, Any]:
    return {
        "document_id": document_id,
        "name": "Subscription agreement",
        "kind": "subscription_agreement",
        "signer_id": signer,
        "signer_email": "ada@example.com",
        "signed_at": "2026-01-01T00:00:00Z",
    }


def uploaded(document_id: str, owner: str = "usr_1") -> dict[str, Any]:
    return {
        "document_id": document_id,
        "name": "Subscription agreement",
        "kind": "subscription_agreement",
        "owner_id": owner,
        "url": "https://docs.example.com/d",
        "uploaded_at": "2026-01-01T00:00:00Z",
    }


async def post(engine: Engine, event_id: str, event_type: str, data: dict[str, Any]) -> None:
    """Store one event as ingest would."""
    now = engine.clock.now()
    event = StoredEvent(event_id, event_type, data, now, now)
    await engine.writer.submit(AppendEvents(engine.bus, [event]))


async def runs_of(engine: Engine, workflow: str | None = None) -> list[Any]:
    query = select(workflow_runs).order_by(workflow_runs.c.seq)
    if workflow is not None:
        query = query.where(workflow_runs.c.workflow == workflow)
    async with engine.database.connect() as conn:
        return list((await conn.execute(query)).all())


async def steps_of(engine: Engine, run_id: str) -> list[Any]:
    query = (
        select(workflow_steps)
        .where(workflow_steps.c.run_id == run_id)
        .order_by(workflow_steps.c.started_at, workflow_steps.c.round)
    )
    async with engine.database.connect() as conn:
        return list((await conn.execute(query)).all())


def all_ended(engine: Engine, count: int) -> Any:
    """A condition for ``drive``: ``count`` runs have ended."""

    async def holds() -> bool:
        runs = await runs_of(engine)
        return len(runs) >= count and all(r.status in FINISHED for r in runs)

    return holds


async def jump(engine: Engine, seconds: float) -> None:
    """Move the clock ``seconds`` at once (a long wait's end) and let the workers look."""
    clock = engine.clock
    assert isinstance(clock, ManualClock)
    clock.advance(seconds)
    engine.waker.wake()


async def jumping(engine: Engine, condition: Any, step: float, times: int = 200) -> None:
    """Jump the clock ``step`` at a time until ``condition`` holds (each jump settled)."""
    for _ in range(times):
        if await condition():
            return
        await jump(engine, step)
        await caught_up(engine)
    raise AssertionError("condition not reached")


async def caught_up(engine: Engine) -> None:
    """Wait (the clock still) until no job is running or due: the workers caught up."""
    now = engine.clock.now()
    for _ in range(4000):
        jobs = await delivery_jobs(engine)
        if not any(
            j.state == "running" or (j.state == "pending" and j.due_at <= now) for j in jobs
        ):
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the workers did not catch up")
