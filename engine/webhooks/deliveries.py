"""``/api/webhooks/{id}/deliveries``: one webhook's deliveries, their attempts, and retries.

A delivery is a job of kind ``webhook``; its id is the job's id. Every retry
of a delivery, manual ones included, repeats its ``webhook-id`` (the message id).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.engine import Row

from engine.core.schema import events, jobs
from engine.http.common import (
    decode_cursor,
    encode_cursor,
    error,
    json,
    parse_limit,
    parse_time,
    require,
)
from engine.jobs.actions import RetryNow, one_off_owner
from engine.jobs.attempts import attempt_dict, load_attempts
from engine.jobs.kinds import AttemptRecord
from engine.webhooks.api import webhook_of
from engine.webhooks.planner import group_key
from engine.webhooks.redelivery import attempt_now, attempt_view
from engine.webhooks.runtime import WEBHOOKS

__all__ = ["add_routes"]

STATES = ("pending", "held", "waiting", "running", "succeeded", "failed", "cancelled")


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/api/webhooks/{id}/deliveries", list_deliveries)
    router.add_get("/api/webhooks/{id}/deliveries/{delivery}", get_delivery)
    router.add_post("/api/webhooks/{id}/deliveries/{delivery}/retry", retry_delivery)


_COLUMNS = (
    jobs.c.id,
    jobs.c.payload,
    jobs.c.state,
    jobs.c.attempts,
    jobs.c.max_attempts,
    jobs.c.due_at,
    jobs.c.event_id,
    jobs.c.rule_set,
    jobs.c.last_error,
    jobs.c.created_at,
    jobs.c.updated_at,
    jobs.c.finished_at,
    events.c.type.label("event_type"),
)


def _delivery(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "message_id": row.payload["message_id"],
        "event_id": row.event_id,
        "event_type": row.event_type,
        "state": row.state,
        "attempts": row.attempts,
        "max_attempts": row.max_attempts,
        "next_attempt_at": row.due_at if row.state in ("pending", "held") else None,
        "last_error": row.last_error,
        "rule_set": row.rule_set,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "finished_at": row.finished_at,
    }


def _attempt(row: Row[Any]) -> dict[str, Any]:
    """A logged attempt as this API has always shown one: flat, its detail beside the rest."""
    common = attempt_dict(row)
    detail = common.pop("detail")
    return {
        "attempt": common.pop("attempt"),
        **attempt_view(AttemptRecord(**common, detail=detail)),
    }


def _delivery_id(request: web.Request) -> int:
    text = request.match_info["delivery"]
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise error(404, "not_found", f"no delivery '{text}'")
    return int(text)


async def list_deliveries(request: web.Request) -> web.Response:
    """Deliveries, newest first; filter by ``state``, ``event_type``, ``since``, ``until``."""
    require(request, "webhooks:read")
    webhook = webhook_of(request)
    limit = parse_limit(request)
    query = (
        select(*_COLUMNS)
        .select_from(jobs.outerjoin(events, events.c.id == jobs.c.event_id))
        .where(jobs.c.group_key == group_key(webhook.name))
        .order_by(jobs.c.id.desc())
        .limit(limit + 1)
    )
    if (state := request.query.get("state")) is not None:
        if state not in STATES:
            raise error(400, "invalid_state", "state must be one of " + ", ".join(STATES))
        query = query.where(jobs.c.state == state)
    if event_type := request.query.get("event_type"):
        query = query.where(events.c.type == event_type)
    if (since := parse_time(request, "since")) is not None:
        query = query.where(jobs.c.created_at >= since)
    if (until := parse_time(request, "until")) is not None:
        query = query.where(jobs.c.created_at < until)
    if cursor := request.query.get("cursor"):
        query = query.where(jobs.c.id < decode_cursor(cursor))
    async with request.app[WEBHOOKS].services.database.connect() as conn:
        rows = (await conn.execute(query)).all()
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1].id) if len(rows) > limit else None
    return json({"deliveries": [_delivery(row) for row in page], "next_cursor": next_cursor})


async def _load(request: web.Request, name: str) -> Row[Any]:
    delivery_id = _delivery_id(request)
    query = (
        select(*_COLUMNS)
        .select_from(jobs.outerjoin(events, events.c.id == jobs.c.event_id))
        .where(jobs.c.id == delivery_id, jobs.c.group_key == group_key(name))
    )
    async with request.app[WEBHOOKS].services.database.connect() as conn:
        row: Row[Any] | None = (await conn.execute(query)).first()
    if row is None:
        raise error(404, "not_found", f"webhook '{name}' has no delivery '{delivery_id}'")
    return row


async def get_delivery(request: web.Request) -> web.Response:
    """One delivery with every attempt, oldest first."""
    require(request, "webhooks:read")
    webhook = webhook_of(request)
    row = await _load(request, webhook.name)
    async with request.app[WEBHOOKS].services.database.connect() as conn:
        attempts = await load_attempts(conn, row.id)
    return json(
        {
            **_delivery(row),
            "webhook": webhook.name,
            "payload": row.payload["event"],
            "attempts": [_attempt(a) for a in attempts],
        }
    )


async def retry_delivery(request: web.Request) -> web.Response:
    """A new attempt now, same ``webhook-id``; works on failed and delivered ones too.

    Not while the webhook is paused or disabled, and not ahead of an earlier
    delivery of an ordered webhook that is still to be made.
    """
    require(request, "webhooks:write")
    webhook = webhook_of(request)
    hooks = request.app[WEBHOOKS]
    services = hooks.services
    row = await _load(request, webhook.name)
    now = services.clock.now()
    owner = one_off_owner()
    reopened = await services.writer.submit(RetryNow(row.id, owner, now, services.lease))
    if reopened.refused == "held":
        raise error(
            409,
            "webhook_not_active",
            f"webhook '{webhook.name}' is {reopened.reason}: activate it first",
        )
    if reopened.refused == "waiting":
        raise error(
            409,
            "delivery_waiting",
            f"delivery {row.id} of the ordered webhook '{webhook.name}' waits for delivery "
            f"{reopened.behind}: it is sent once that one ends",
            behind=str(reopened.behind),
        )
    if reopened.job is None:
        raise error(409, "delivery_running", f"delivery {row.id} is being attempted right now")
    job = reopened.job
    attempt, state = await attempt_now(job, owner, hooks.handler, services, now)
    return json(
        {
            "delivery": str(job.id),
            "message_id": job.payload["message_id"],
            "attempt_number": job.attempts,
            "state": state,
            "attempt": attempt_view(attempt),
        }
    )
