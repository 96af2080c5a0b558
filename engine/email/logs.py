"""``/api/emails`` as a log: the emails sent, their statistics, the suppression list."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from aiohttp import web
from sqlalchemy import and_, case, func, or_, select

from engine.core.schema import job_attempts, jobs
from engine.email.feedback import STATUSES, Suppress
from engine.email.runtime import EMAIL, Email
from engine.email.sending import ComposeError
from engine.email.tables import email_events, email_suppressions, emails
from engine.http.common import error, json, parse_limit, parse_time, read_json, require
from engine.jobs.attempts import attempt_dict

__all__ = ["add_routes", "fields"]


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/api/emails/logs", list_logs)
    router.add_get("/api/emails/logs/{id}", get_log)
    router.add_get("/api/emails/stats", stats)
    router.add_get("/api/emails/suppressions", list_suppressions)
    router.add_post("/api/emails/suppressions", add_suppression)
    router.add_delete("/api/emails/suppressions/{address}", remove_suppression)


def fields(body: object, allowed: set[str], required: set[str]) -> dict[str, Any]:
    """``body`` as an object of only ``allowed`` fields, ``required`` among them; else 4xx."""
    if not isinstance(body, dict):
        raise error(400, "invalid_body", "the body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise error(422, "unknown_field", f"unknown field '{unknown[0]}'", field=unknown[0])
    missing = sorted(required - set(body))
    if missing:
        raise error(422, "missing_field", f"the field '{missing[0]}' is required", field=missing[0])
    return body


# The log


def _cursor(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        value = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        value = ""
    if not value.startswith("eml_") or len(value) > 40:
        raise error(400, "invalid_cursor", "the cursor is not one this API gave out")
    return value


def _summary(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "template": row.template,
        "rule_set": row.rule_set,
        "category": row.category,
        "cause": row.cause,
        "from": row.sender,
        "to": row.recipient,
        "to_name": row.recipient_name,
        "subject": row.subject,
        "status": row.status,
        "provider": row.provider,
        "provider_message_id": row.provider_message_id,
        "message_id": row.message_id,
        "open_count": row.open_count,
        "click_count": row.click_count,
        "error": row.error,
        "bounce": row.bounce,
        **{name: getattr(row, name) for name in _TIMES},
    }


# When each thing happened to an email, as the table keeps them (its last change aside).
_TIMES = tuple(str(c.name) for c in emails.c if c.name.endswith("_at") and c.name != "updated_at")


_SUMMARY_COLUMNS = [c for c in emails.c if c.name not in ("html", "text", "data")]


async def list_logs(request: web.Request) -> web.Response:
    """Emails newest first; filters template, status, to, since, until; a cursor."""
    require(request, "emails:read")
    email = request.app[EMAIL]
    limit = parse_limit(request)
    query = select(*_SUMMARY_COLUMNS).order_by(emails.c.id.desc()).limit(limit + 1)
    status = request.query.get("status")
    if status is not None and status not in STATUSES:
        raise error(400, "invalid_status", f"status must be one of {', '.join(STATUSES)}")
    filters = {
        emails.c.template: request.query.get("template"),
        emails.c.status: status,
        emails.c.recipient: _stored_address(email, to) if (to := request.query.get("to")) else None,
    }
    for column, value in filters.items():
        if value is not None:
            query = query.where(column == value)
    since, until = parse_time(request, "since"), parse_time(request, "until")
    if since is not None:
        query = query.where(emails.c.created_at >= since)
    if until is not None:
        query = query.where(emails.c.created_at < until)
    after = _cursor(request.query.get("cursor"))
    if after is not None:
        query = query.where(emails.c.id < after)
    async with email.services.database.connect() as conn:
        rows = (await conn.execute(query)).all()
    page = rows[:limit]
    cursor = None
    if len(rows) > limit:
        cursor = base64.urlsafe_b64encode(page[-1].id.encode()).decode().rstrip("=")
    return json({"emails": [_summary(row) for row in page], "next_cursor": cursor})


async def get_log(request: web.Request) -> web.Response:
    """One email: what was sent, each attempt, everything heard about it since."""
    require(request, "emails:read")
    email = request.app[EMAIL]
    email_id = request.match_info["id"]
    if not email_id.startswith("eml_") or len(email_id) > 40:
        raise error(404, "not_found", f"no email '{email_id}'")
    async with email.services.database.connect() as conn:
        row = (await conn.execute(select(emails).where(emails.c.id == email_id))).first()
        if row is None:
            raise error(404, "not_found", f"no email '{email_id}'")
        job = (
            await conn.execute(
                select(jobs.c.id, jobs.c.state).where(jobs.c.idempotency_key == row.key)
            )
        ).first()
        attempts = []
        if job is not None:
            attempts = (
                await conn.execute(
                    select(job_attempts)
                    .where(job_attempts.c.job_id == job.id)
                    .order_by(job_attempts.c.attempt)
                )
            ).all()
        heard = (
            await conn.execute(
                select(email_events)
                .where(email_events.c.email_id == email_id)
                .order_by(email_events.c.id)
            )
        ).all()
    return json(
        {
            **_summary(row),
            "reply_to": row.reply_to,
            "tracking": row.tracking,
            "html": row.html,
            "text": row.text,
            "data": row.data,
            "job": {"id": str(job.id), "state": job.state} if job is not None else None,
            "attempts": [attempt_dict(a) for a in attempts],
            "events": [
                {
                    "type": e.type,
                    "source": e.source,
                    "occurred_at": e.occurred_at,
                    "received_at": e.received_at,
                    "detail": e.detail,
                }
                for e in heard
            ],
        }
    )


_COUNTED = ("sent", "delivered", "opened", "clicked", "bounced", "complained", "unsubscribed")


def _counts() -> list[Any]:
    """Per group: emails, and how many reached each stage (an opened email was delivered)."""
    reached = {
        "sent": emails.c.sent_at.is_not(None),
        "delivered": or_(emails.c.delivered_at.is_not(None), emails.c.open_count > 0),
        "opened": emails.c.open_count > 0,
        "clicked": emails.c.click_count > 0,
        "bounced": emails.c.bounced_at.is_not(None),
        "complained": emails.c.complained_at.is_not(None),
        "unsubscribed": emails.c.unsubscribed_at.is_not(None),
    }
    return (
        [func.count().label("emails")]
        + [
            func.sum(case((condition, 1), else_=0)).label(name)
            for name, condition in reached.items()
        ]
        + [
            func.sum(case((emails.c.status == s, 1), else_=0)).label(s)
            for s in ("queued", "failed", "suppressed", "dropped")
        ]
    )


def _rates(row: Any) -> dict[str, Any]:
    counts = {name: int(getattr(row, name) or 0) for name in row._fields if name != "group"}
    sent = counts["sent"] or 0
    delivered = counts["delivered"] or 0

    def rate(n: int, of: int) -> float | None:
        return round(n / of, 4) if of else None

    return {
        "counts": counts,
        "rates": {
            "delivered": rate(delivered, sent),
            "opened": rate(counts["opened"], delivered),
            "clicked": rate(counts["clicked"], delivered),
            "bounced": rate(counts["bounced"], sent),
            "complained": rate(counts["complained"], delivered),
            "unsubscribed": rate(counts["unsubscribed"], delivered),
        },
    }


async def stats(request: web.Request) -> web.Response:
    """Counts and rates, in all and per template and category, over ``since``..``until``
    (the emails created then)."""
    require(request, "emails:read")
    email = request.app[EMAIL]
    since, until = parse_time(request, "since"), parse_time(request, "until")
    window = []
    if since is not None:
        window.append(emails.c.created_at >= since)
    if until is not None:
        window.append(emails.c.created_at < until)
    where = and_(*window) if window else None
    answers: dict[str, Any] = {"since": since, "until": until}
    async with email.services.database.connect() as conn:
        total = select(*_counts())
        total = total.where(where) if where is not None else total
        answers.update(_rates((await conn.execute(total)).one()))
        for name, column in (("templates", emails.c.template), ("categories", emails.c.category)):
            query = select(column.label("group"), *_counts()).group_by(column)
            query = query.where(where) if where is not None else query
            answers[name] = {
                row.group: _rates(row) for row in await conn.execute(query) if row.group is not None
            }
    return json(answers)


# Suppressions


async def list_suppressions(request: web.Request) -> web.Response:
    require(request, "emails:read")
    email = request.app[EMAIL]
    limit = parse_limit(request)
    query = select(email_suppressions).order_by(
        email_suppressions.c.created_at.desc(), email_suppressions.c.address
    )
    address = request.query.get("address")
    if address is not None:
        query = query.where(email_suppressions.c.address == _stored_address(email, address))
    async with email.services.database.connect() as conn:
        rows = (await conn.execute(query.limit(limit))).all()
    return json({"suppressions": [_suppression(row) for row in rows]})


def _suppression(row: Any) -> dict[str, Any]:
    return {
        "address": row.address,
        "category": row.category or None,
        "reason": row.reason,
        "detail": row.detail,
        "email_id": row.email_id,
        "created_at": row.created_at,
    }


async def add_suppression(request: web.Request) -> web.Response:
    """Suppress an address, for one category or (without one) every email."""
    require(request, "emails:write")
    email = request.app[EMAIL]
    body = fields(await read_json(request), {"address", "category", "detail"}, {"address"})
    address = _address(email, body["address"])
    category = body.get("category")
    detail = body.get("detail")
    if category is not None and not (
        isinstance(category, str) and 0 < len(category) <= 100 and category.isprintable()
    ):
        raise error(
            422, "invalid_category", "category must be a category's name (1 to 100 characters)"
        )
    if detail is not None and (not isinstance(detail, str) or len(detail) > 500):
        raise error(422, "invalid_detail", "detail must be a string of at most 500 characters")
    now = email.services.clock.now()
    category = category or ""  # every email
    added = await email.services.writer.submit(Suppress(address, category, now, detail=detail))
    status = 201 if added else 200
    return json({"address": address, "category": category or None, "added": added}, status=status)


def _address(email: Email, value: object) -> str:
    try:
        address, _ = email.composer.recipient(value, "address")
    except ComposeError as exc:
        raise error(exc.status, exc.code, exc.message, **exc.details) from None
    return address


def _stored_address(email: Email, value: str) -> str:
    """An address as the list keeps it (lower case, its domain in IDNA), when it is one."""
    try:
        address, _ = email.composer.recipient(value)
    except ComposeError:
        return value.lower()
    return address


async def remove_suppression(request: web.Request) -> web.Response:
    require(request, "emails:write")
    email = request.app[EMAIL]
    address = _stored_address(email, request.match_info["address"])
    category = request.query.get("category", "")
    now = email.services.clock.now()
    removed = await email.services.writer.submit(Suppress(address, category, now, remove=True))
    if not removed:
        raise error(404, "not_found", f"{address} is not suppressed for that category")
    return web.Response(status=204)
