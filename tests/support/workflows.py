"""Workflow runs in process: events of any type, runs and their steps read back."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from engine.events.bus import AppendEvents, StoredEvent
from engine.runtime import Engine
from engine.workflows.tables import workflow_runs, workflow_steps

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
