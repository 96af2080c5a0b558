"""``/api/emails``: templates (from the rules), previews and sends (the log: ``logs``).

Templates are defined in rule files: they are listed with the file and line
that defines each, and a POST, PATCH or DELETE on one answers 405
``defined_in_rules``. A send answers 202 with the email's id once the email
and its job are committed. A send with an ``Idempotency-Key`` header (scoped
to the API key) answers, when repeated with the same body, the email first
queued and sends nothing more; the same key with another body is a 409.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from dsl import RuleSet, ir
from dsl.render import RenderError, UnknownTemplate
from engine.email.logs import fields
from engine.email.runtime import EMAIL, Email
from engine.email.sending import ComposeError, NewEmail, QueueEmails, request_hash
from engine.email.tables import emails
from engine.events.ids import new_id
from engine.http.common import (
    defined_in_rules,
    error,
    json,
    read_json,
    require,
    rules_of,
)

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


async def preview(request: web.Request) -> web.Response:
    """The template rendered with the data given, else its sample; the variables missing
    and the ones given that it does not declare."""
    require(request, "emails:read")
    rules = rules_of(request)
    email = request.app[EMAIL]
    template = _template_of(request, rules)
    renderer = email.renderers.get(rules)
    body = fields(await read_json(request) if request.can_read_body else {}, {"data"}, set())
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


def _idempotency(
    request: web.Request, key_name: str, body: dict[str, Any]
) -> tuple[str, str | None]:
    """The email's key, and the request's fingerprint when a repeat can be told by it (a
    request without an Idempotency-Key gets a key of its own: it cannot be repeated)."""
    given = request.headers.get("Idempotency-Key")
    if given is None:
        return f"email:api:{new_id('req')}", None
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
    allowed = {"to", "from", "subject", "html", "text", "reply_to"}
    body = fields(await read_json(request), allowed, {"to", "subject"})
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
    body = fields(await read_json(request), {"template", "to", "data"}, {"template", "to"})
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
