"""``/api/events``: ingest (one, a batch, CloudEvents) and reading back what happened."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlalchemy import select

from engine.core.schema import events, jobs
from engine.events.bus import AppendEvents, StoredEvent
from engine.events.ids import new_event_id
from engine.events.ingest import (
    Incoming,
    Problem,
    Rejection,
    check_event,
    read_events,
)
from engine.http.common import (
    decode_cursor,
    encode_cursor,
    engine_of,
    error,
    json,
    parse_limit,
    parse_time,
    require,
)
from engine.jobs.queue import Job

if TYPE_CHECKING:
    from engine.runtime import Engine

__all__ = ["add_routes"]


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/events", post_events)
    app.router.add_get("/api/events", list_events)
    app.router.add_get("/api/events/{id}", get_event)


async def post_events(request: web.Request) -> web.Response:
    """Store events durably and plan their jobs; answer only after the commit."""
    require(request, "events:write")
    engine = engine_of(request)
    limits = engine.settings.config.ingest
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise error(
            413, "body_too_large", f"the body is over the limit of {limits.max_body} bytes"
        ) from None
    # In flight from here (not while a slow client is still sending): workers
    # step back while many are.
    engine.ingesting += 1
    try:
        return await _ingest(request, engine, body)
    finally:
        engine.ingesting -= 1


async def _ingest(request: web.Request, engine: Engine, body: bytes) -> web.Response:
    limits = engine.settings.config.ingest
    try:
        incoming, is_batch = read_events(
            body, request.content_type, request.headers, max_batch=limits.max_batch
        )
    except Rejection as exc:
        raise error(exc.status, **_split(exc.body)) from None

    rules = engine.rules.rule_set()
    if rules is None:
        raise error(503, "not_ready", "no rule set is loaded yet")
    seen: set[str] = set()
    for event in incoming:
        check_event(event, rules, accept_unknown_types=limits.accept_unknown_types)
        if event.id is not None:
            if event.id in seen:
                event.problems.append(Problem("id", "the same id appears twice in this batch"))
            seen.add(event.id)

    partial = request.query.get("partial") == "true"
    invalid = [i for i, event in enumerate(incoming) if event.problems]
    if invalid and not (is_batch and partial):
        raise _invalid(incoming, invalid, is_batch)

    now = engine.clock.now()
    accepted = [event for event in incoming if not event.problems]
    stored = [
        StoredEvent(
            id=event.id or new_event_id(),
            assigned_id=event.id is None,
            type=event.type,
            data=event.data,
            occurred_at=event.occurred_at or now,
            received_at=now,
            source=event.source,
            subject=event.subject,
        )
        for event in accepted
    ]
    # Planned under the rule set the events were checked with, not one a reload
    # may have made current since.
    write = AppendEvents(engine.bus, stored, rules)
    results = await engine.writer.submit(write) if stored else []
    engine.metrics.events_ingested.inc(sum(1 for r in results if not r.duplicate))

    if not is_batch:
        (result,) = results
        return json(
            {"id": result.id, "duplicate": result.duplicate, "jobs": result.jobs},
            status=200 if result.duplicate else 202,
        )
    outcomes = iter(results)
    answers: list[dict[str, Any]] = []
    for index, event in enumerate(incoming):
        if event.problems:
            answers.append(
                {
                    "index": index,
                    "id": event.id,
                    "status": "rejected",
                    "problems": [p.as_dict() for p in event.problems],
                }
            )
            continue
        result = next(outcomes)
        status = "duplicate" if result.duplicate else "accepted"
        answers.append({"index": index, "id": result.id, "status": status, "jobs": result.jobs})
    counts = {s: sum(1 for a in answers if a["status"] == s) for s in ("accepted", "duplicate")}
    return json(
        {"events": answers, **counts, "rejected": len(invalid)},
        status=202,
    )


def _split(body: dict[str, Any]) -> dict[str, Any]:
    return {"code": body["error"], **{k: v for k, v in body.items() if k != "error"}}


def _invalid(incoming: list[Incoming], invalid: list[int], is_batch: bool) -> web.HTTPException:
    if not is_batch:
        problems = [p.as_dict() for p in incoming[0].problems]
        return error(422, "invalid_event", _summary(incoming[0].problems), problems=problems)
    return error(
        422,
        "invalid_batch",
        f"{len(invalid)} of {len(incoming)} events are invalid; nothing was stored "
        "(send ?partial=true to store the valid ones)",
        events=[
            {
                "index": index,
                "id": incoming[index].id,
                "problems": [p.as_dict() for p in incoming[index].problems],
            }
            for index in invalid
        ],
    )


def _summary(problems: list[Problem]) -> str:
    first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{first.path}: {first.reason}{more}"


async def list_events(request: web.Request) -> web.Response:
    """Events, newest first, filtered by type and time; cursor pagination."""
    require(request, "events:read")
    engine = engine_of(request)
    limit = parse_limit(request)
    query = select(events).order_by(events.c.seq.desc()).limit(limit + 1)
    if kind := request.query.get("type"):
        query = query.where(events.c.type == kind)
    if (since := parse_time(request, "since")) is not None:
        query = query.where(events.c.received_at >= since)
    if (until := parse_time(request, "until")) is not None:
        query = query.where(events.c.received_at < until)
    if cursor := request.query.get("cursor"):
        query = query.where(events.c.seq < decode_cursor(cursor))
    async with engine.database.connect() as conn:
        rows = (await conn.execute(query)).all()
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1].seq) if len(rows) > limit else None
    return json({"events": [_event(row) for row in page], "next_cursor": next_cursor})


async def get_event(request: web.Request) -> web.Response:
    """One event, the rule-set version that matched it, and the jobs it caused."""
    require(request, "events:read")
    engine = engine_of(request)
    event_id = request.match_info["id"]
    async with engine.database.connect() as conn:
        row = (await conn.execute(select(events).where(events.c.id == event_id))).first()
        if row is None:
            raise error(404, "not_found", f"no event with id '{event_id}'")
        caused = (
            await conn.execute(select(jobs).where(jobs.c.event_id == event_id).order_by(jobs.c.id))
        ).all()
    return json(
        {
            **_event(row),
            "jobs": [
                {
                    "id": str(job.id),  # as /api/jobs/{id} and the webhooks API give it
                    "kind": job.kind,
                    "target": _target(engine, job),
                    "state": job.state,
                    "attempts": job.attempts,
                    "max_attempts": job.max_attempts,
                    "due_at": job.due_at,
                    "finished_at": job.finished_at,
                    "last_error": job.last_error,
                    "idempotency_key": job.idempotency_key,
                    "rule_set": job.rule_set,
                }
                for job in caused
            ],
        }
    )


def _target(engine: Engine, job: Any) -> str | None:
    """What the job acts on, as its kind names it (None for a kind not running here)."""
    kind = engine.kinds.get(job.kind)
    return kind.target(Job.from_row(job)) if kind is not None else None


def _event(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "type": row.type,
        "source": row.source,
        "subject": row.subject,
        "occurred_at": row.occurred_at,
        "received_at": row.received_at,
        "data": row.data,
        "rule_set": row.rule_set,
        "unplanned": row.unplanned or [],
    }
