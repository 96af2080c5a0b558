"""``/api/jobs/{id}``: any job, of any kind, with the timeline of its attempts."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select

from engine.core.schema import jobs
from engine.http.common import engine_of, error, json, require
from engine.jobs.attempts import attempt_dict, load_attempts
from engine.jobs.queue import Job

__all__ = ["add_routes", "job_summary"]


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/jobs/{id}", get_job)


def job_summary(job: Job, target: str | None) -> dict[str, Any]:
    """A job as the API shows it, whatever its kind."""
    return {
        "id": str(job.id),
        "kind": job.kind,
        "target": target,
        "state": job.state,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "due_at": job.due_at,
        "event_id": job.event_id,
        "rule_set": job.rule_set,
        "idempotency_key": job.idempotency_key,
        "group": job.group_key,
        "last_error": job.last_error,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "finished_at": job.finished_at,
    }


async def get_job(request: web.Request) -> web.Response:
    """One job and every attempt, oldest first (scope ``jobs:read``)."""
    require(request, "jobs:read")
    engine = engine_of(request)
    text = request.match_info["id"]
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise error(404, "not_found", f"no job '{text}'")
    async with engine.database.connect() as conn:
        row = (await conn.execute(select(jobs).where(jobs.c.id == int(text)))).first()
        if row is None:
            raise error(404, "not_found", f"no job '{text}'")
        attempts = await load_attempts(conn, int(text))
    job = Job.from_row(row)
    kind = engine.kinds.get(job.kind)
    body = job_summary(job, kind.target(job) if kind is not None else None)
    return json({**body, "timeline": [attempt_dict(a) for a in attempts]})
