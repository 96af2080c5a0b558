"""``/api/emails``: templates (from the rules), previews, sends, the log, stats, suppressions.

Templates are defined in rule files: they are listed with the file and line
that defines each, and a POST, PATCH or DELETE on one answers 405
``defined_in_rules``. A send answers 202 with the email's id once the email
and its job are committed. A send with an ``Idempotency-Key`` header (scoped
to the API key) answers, when repeated with the same body, the email first
queued and sends nothing more; the same key with another body is a 409.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from aiohttp import web
from sqlalchemy import and_, case, func, or_, select

from dsl import RuleSet, ir
from engine.core.schema import job_attempts, jobs
from engine.email.feedback import STATUSES, Suppress, address_of
from engine.email.render import RenderError, UnknownTemplate
from engine.email.runtime import EMAIL, Email
from engine.email.sending import ComposeError, NewEmail, QueueEmails, request_hash
from engine.email.tables import email_events, email_suppressions, emails
from engine.events.ids import new_id
from engine.http.common import (
    defined_in_rules,
    error,
    json,
    parse_limit,
    parse_time,
    read_json,
    require,
    rules_of,
)
from engine.jobs.attempts import attempt_dict

__all__ = ["add_routes"]

_MAX_IDEMPOTENCY_KEY = 255


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/api/emails/templates", list_templates)
    router.add_post("/api/emails/templates", create_template)
    router.add_get("/api/emails/templates/{id}", get_template)
    router.add_patch("/api/emails/templates/{id}", change_template)
    router.add_delete("/api/emails/templates/{id}", change_template)
    router.add_post("/api/emails/templates/{id}/preview", preview)
    router.add_post("/api/emails/send", send)
    router.add_post("/api/emails/send-template", send_template)
    router.add_get("/api/emails/logs", list_logs)
    router.add_get("/api/emails/logs/{id}", get_log)
    router.add_get("/api/emails/stats", stats)
    router.add_get("/api/emails/suppressions", list_suppressions)
    router.add_post("/api/emails/suppressions", add_suppression)
    router.add_delete("/api/emails/suppressions/{address}", remove_suppression)


# Templates


def _template_of(request: web.Request, rules: RuleSet) -> ir.Template:
    name = request.match_info["id"]
    template = rules.templates.get(name)
    if template is None:
        raise error(404, "not_found", f"no template '{name}'")
    return template


def _describe(template: ir.Template, rules: RuleSet, email: Email) -> dict[str, Any]:
    try:
        sample = email.renderers.get(rules).sample(template.name)
    except RenderError:
        sample = None
    return {
        "id": template.name,
        "description": template.description,
        "subject": template.subject,
        "html": template.html,
        "text": template.text,
        "layout": template.layout,
        "preview": template.preview,
        "variables": list(template.variables),
        "sample": sample,
        "category": template.category,
        "tracking": template.tracking,
        "file": template.source.file,
        "line": template.source.line,
        "rule_set": rules.version,
    }


async def _stats_by_template(email: Email, names: list[str]) -> dict[str, dict[str, int]]:
    query = (
        select(emails.c.template, emails.c.status, func.count())
        .where(emails.c.template.in_(names))
        .group_by(emails.c.template, emails.c.status)
    )
    found: dict[str, dict[str, int]] = {name: {} for name in names}
    async with email.services.database.connect() as conn:
        for template, status, count in await conn.execute(query):
            found[template][status] = count
    return {name: {"sent": _sent(counts), **counts} for name, counts in found.items()}


def _sent(counts: dict[str, int]) -> int:
    return sum(
        n for status, n in counts.items() if status not in ("queued", "failed", "suppressed")
    )


async def list_templates(request: web.Request) -> web.Response:
    require(request, "emails:read")
    rules = rules_of(request)
    email = request.app[EMAIL]
    counts = await _stats_by_template(email, list(rules.templates))
    body = [{**_describe(t, rules, email), "stats": counts[t.name]} for t in rules.ir.templates]
    return json({"templates": body})


async def get_template(request: web.Request) -> web.Response:
    require(request, "emails:read")
    rules = rules_of(request)
    email = request.app[EMAIL]
    template = _template_of(request, rules)
    counts = await _stats_by_template(email, [template.name])
    return json({**_describe(template, rules, email), "stats": counts[template.name]})


async def create_template(request: web.Request) -> web.Response:
    require(request, "emails:read")
    rules = rules_of(request)
    last = rules.ir.templates[-1].source if rules.ir.templates else None
    raise defined_in_rules(
        last.file if last else "rules/emails.ownly",
        last.line if last else None,
        "templates are defined in rule files: add a `template` block there",
    )


async def change_template(request: web.Request) -> web.Response:
    require(request, "emails:read")
    template = _template_of(request, rules_of(request))
    where = f"{template.source.file}:{template.source.line}"
    raise defined_in_rules(
        template.source.file,
        template.source.line,
        f"template '{template.name}' is defined in the rules: edit {where}",
    )


def _fields(body: object, allowed: set[str], required: set[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise error(400, "invalid_body", "the body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise error(422, "unknown_field", f"unknown field '{unknown[0]}'", field=unknown[0])
    missing = sorted(required - set(body))
    if missing:
        raise error(422, "missing_field", f"the field '{missing[0]}' is required", field=missing[0])
    return body


async def preview(request: web.Request) -> web.Response:
    """The template rendered with the data given, else its sample; the variables missing
    and the ones given that it does not declare."""
    require(request, "emails:read")
    rules = rules_of(request)
    email = request.app[EMAIL]
    template = _template_of(request, rules)
    renderer = email.renderers.get(rules)
    body = _fields(await read_json(request) if request.can_read_body else {}, {"data"}, set())
    data = body.get("data")
    if data is None:
        data = renderer.sample(template.name) or {}
    if not isinstance(data, dict):
        raise error(422, "invalid_data", "data must be an object of the variables")
    missing, extra = renderer.variables(template.name, data)
    try:
        rendered = renderer.render(template.name, data)
    except UnknownTemplate:
        raise error(404, "not_found", f"no template '{template.name}'") from None
    except RenderError as exc:
        raise error(
            422,
            "render_failed",
            str(exc),
            variable=getattr(exc, "variable", None),
            missing=missing,
            extra=extra,
        ) from None
    return json(
        {
            "template": template.name,
            "subject": rendered.subject,
            "html": rendered.html,
            "text": rendered.text,
            "preheader": rendered.preheader,
            "missing": missing,
            "extra": extra,
            "rule_set": rules.version,
        }
    )


# Sending


def _idempotency(request: web.Request, key_name: str, body: dict[str, Any]) -> tuple[str, str]:
    """The email's key and the request's fingerprint."""
    given = request.headers.get("Idempotency-Key")
    if given is None:
        return f"email:api:{new_id('req')}", request_hash(body)
    if not given or len(given) > _MAX_IDEMPOTENCY_KEY or not given.isprintable():
        raise error(
            400,
            "invalid_idempotency_key",
            f"Idempotency-Key must be 1 to {_MAX_IDEMPOTENCY_KEY} printable characters",
        )
    return f"email:api:{key_name}:{given}", request_hash({"path": request.path, **body})


async def _queue(request: web.Request, email: Email, new: NewEmail) -> web.Response:
    services = email.services
    now = services.clock.now()
    write = QueueEmails([new], now, email.config.max_attempts, services.wake)
    (queued,) = await services.writer.submit(write)
    if queued.duplicate and not queued.same_request:
        raise error(
            409,
            "idempotency_key_reused",
            "this Idempotency-Key was used with another request",
            email_id=queued.id,
        )
    response = json({"id": queued.id, "status": queued.status}, status=202)
    if queued.duplicate:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _composed(make: Callable[[], NewEmail]) -> NewEmail:
    try:
        return make()
    except ComposeError as exc:
        raise error(exc.status, exc.code, exc.message, **exc.details) from None


async def send(request: web.Request) -> web.Response:
    """An ad hoc email: to, from, subject, html and/or text, reply_to."""
    key = require(request, "emails:write")
    email = request.app[EMAIL]
    fields = {"to", "from", "subject", "html", "text", "reply_to"}
    body = _fields(await read_json(request), fields, {"to", "subject"})
    job_key, fingerprint = _idempotency(request, key.name, body)
    new = _composed(
        lambda: email.composer.adhoc(
            to=body["to"],
            sender=body.get("from"),
            subject=body["subject"],
            html=body.get("html"),
            text=body.get("text"),
            reply_to=body.get("reply_to"),
            key=job_key,
            request=fingerprint,
        )
    )
    return await _queue(request, email, new)


async def send_template(request: web.Request) -> web.Response:
    """An email of a template: template, to, data."""
    key = require(request, "emails:write")
    email = request.app[EMAIL]
    rules = rules_of(request)
    body = _fields(await read_json(request), {"template", "to", "data"}, {"template", "to"})
    if not isinstance(body["template"], str):
        raise error(422, "invalid_template", "template must be a template's name")
    job_key, fingerprint = _idempotency(request, key.name, body)
    new = _composed(
        lambda: email.composer.template(
            rules,
            body["template"],
            body["to"],
            body.get("data", {}),
            key=job_key,
            cause="api",
            request=fingerprint,
        )
    )
    return await _queue(request, email, new)


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
        "subject": row.subject,
        "status": row.status,
        "provider": row.provider,
        "provider_message_id": row.provider_message_id,
        "message_id": row.message_id,
        "open_count": row.open_count,
        "click_count": row.click_count,
        "error": row.error,
        "bounce": row.bounce,
        **{
            name: getattr(row, name)
            for name in (
                "created_at",
                "sent_at",
                "delivered_at",
                "first_opened_at",
                "last_opened_at",
                "first_clicked_at",
                "last_clicked_at",
                "bounced_at",
                "complained_at",
                "unsubscribed_at",
                "failed_at",
            )
        },
    }


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
        emails.c.recipient: request.query.get("to"),
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
        query = query.where(email_suppressions.c.address == address.lower())
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
    body = _fields(await read_json(request), {"address", "category", "detail"}, {"address"})
    address = _composed_address(email, body["address"])
    category = body.get("category") or ""
    detail = body.get("detail")
    if not isinstance(category, str) or len(category) > 100:
        raise error(422, "invalid_category", "category must be a category's name")
    if detail is not None and (not isinstance(detail, str) or len(detail) > 500):
        raise error(422, "invalid_detail", "detail must be a string of at most 500 characters")
    now = email.services.clock.now()
    added = await email.services.writer.submit(Suppress(address, category, now, detail=detail))
    status = 201 if added else 200
    return json({"address": address, "category": category or None, "added": added}, status=status)


def _composed_address(email: Email, value: object) -> str:
    try:
        text = email.composer.address(value, "address")
    except ComposeError as exc:
        raise error(exc.status, exc.code, exc.message, **exc.details) from None
    return address_of(text).lower()


async def remove_suppression(request: web.Request) -> web.Response:
    require(request, "emails:write")
    email = request.app[EMAIL]
    address = request.match_info["address"].lower()
    category = request.query.get("category", "")
    now = email.services.clock.now()
    removed = await email.services.writer.submit(Suppress(address, category, now, remove=True))
    if not removed:
        raise error(404, "not_found", f"{address} is not suppressed for that category")
    return web.Response(status=204)
