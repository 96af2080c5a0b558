"""``/api/webhooks``: webhooks as the rules define them, their runtime state, tests and recovery.

Definitions live in rule files: a POST, PUT, PATCH or DELETE that would change
one answers 405 with the file and line to edit. Runtime state (pause,
activate), test deliveries and recovery are operated here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from aiohttp import web

from dsl import ir
from engine.events.catalog import describe
from engine.http.common import (
    defined_in_rules,
    error,
    json,
    parse_rfc3339_field,
    require,
    rules_of,
)
from engine.jobs.actions import one_off_owner, recover_failed
from engine.webhooks.health import SetState, State, Stats, load_stats
from engine.webhooks.planner import group_key
from engine.webhooks.redelivery import StartTest, attempt_now, attempt_view, test_event
from engine.webhooks.runtime import WEBHOOKS

__all__ = ["add_routes", "webhook_of"]


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/api/webhooks/events", list_event_types)  # before /{id}
    router.add_get("/api/webhooks", list_webhooks)
    router.add_post("/api/webhooks", create_webhook)
    router.add_get("/api/webhooks/{id}", get_webhook)
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        router.add_route(method, "/api/webhooks/{id}", change_webhook)
    router.add_post("/api/webhooks/{id}/test", send_test)
    router.add_post("/api/webhooks/{id}/pause", pause)
    router.add_post("/api/webhooks/{id}/activate", activate)
    router.add_post("/api/webhooks/{id}/recover", recover)


def webhook_of(request: web.Request) -> ir.Webhook:
    """The webhook named by ``{id}`` in the current rules, or 404."""
    name = request.match_info["id"]
    webhook = rules_of(request).webhooks.get(name)
    if webhook is None:
        raise error(404, "not_found", f"no webhook named '{name}' in the rules")
    return webhook


def _value(value: ir.Value) -> object:
    """A definition value as shown: ``env()`` by name, a literal URL by its origin only."""
    if isinstance(value, ir.EnvRef):
        return {"env": value.env}
    scheme, _, rest = value.partition("://")
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    return f"{scheme}://{host}" + ("/..." if "/" in rest else "")


def _summary(webhook: ir.Webhook, stats: Stats) -> dict[str, Any]:
    return {
        "id": webhook.name,
        "description": webhook.description,
        "file": webhook.source.file,
        "line": webhook.source.line,
        **stats.as_dict(),
    }


async def list_webhooks(request: web.Request) -> web.Response:
    """Every webhook of the rules, with its source, runtime state and statistics."""
    require(request, "webhooks:read")
    rules = rules_of(request)
    stats = await load_stats(request.app[WEBHOOKS].services.database, rules.webhooks)
    return json(
        {
            "webhooks": [_summary(w, stats[w.name]) for w in rules.webhooks.values()],
            "rule_set": rules.version,
        }
    )


async def get_webhook(request: web.Request) -> web.Response:
    """One webhook: its definition as compiled, runtime state and statistics."""
    require(request, "webhooks:read")
    webhook = webhook_of(request)
    rules = rules_of(request)
    database = request.app[WEBHOOKS].services.database
    stats = (await load_stats(database, [webhook.name]))[webhook.name]
    limit = webhook.rate_limit
    return json(
        {
            **_summary(webhook, stats),
            "url": _value(webhook.url),
            "events": list(webhook.events),
            "filter": webhook.when,
            "retry": webhook.retry.model_dump(mode="json"),
            "timeout_seconds": webhook.timeout_seconds,
            "rate_limit": limit.model_dump(mode="json") if limit is not None else None,
            "ordered": webhook.ordered,
            "headers": [header.name for header in webhook.headers],
            "secrets": len(webhook.secrets),
            "rule_set": rules.version,
        }
    )


async def create_webhook(request: web.Request) -> web.Response:
    require(request, "webhooks:read")
    rules = rules_of(request)
    last = rules.ir.webhooks[-1].source if rules.ir.webhooks else None
    raise defined_in_rules(
        last.file if last else "rules/webhooks.ownly",
        last.line if last else None,
        "webhooks are defined in rule files: add a `webhook` block there",
    )


async def change_webhook(request: web.Request) -> web.Response:
    require(request, "webhooks:read")
    webhook = webhook_of(request)
    raise defined_in_rules(
        webhook.source.file,
        webhook.source.line,
        f"webhook '{webhook.name}' is defined in the rules: edit "
        f"{webhook.source.file}:{webhook.source.line}",
    )


async def send_test(request: web.Request) -> web.Response:
    """Send a ``webhook.test`` event to this webhook now; answer with the attempt."""
    key = require(request, "webhooks:write")
    webhook = webhook_of(request)
    hooks = request.app[WEBHOOKS]
    services = hooks.services
    now = services.clock.now()
    owner = one_off_owner()
    event = test_event(webhook.name, key.name, now)
    write = StartTest(
        services.bus, hooks.planner, rules_of(request), webhook.name, event, owner, services.lease
    )
    job = await services.writer.submit(write)
    attempt, state = await attempt_now(job, owner, hooks.handler, services, now)
    return json(
        {
            "delivery": str(job.id),
            "event_id": event.id,
            "message_id": job.payload["message_id"],
            "state": state,
            "attempt": attempt_view(attempt),
        }
    )


async def _set_state(request: web.Request, state: State, reason: str | None) -> web.Response:
    require(request, "webhooks:write")
    webhook = webhook_of(request)
    services = request.app[WEBHOOKS].services
    row = await services.writer.submit(SetState(webhook.name, state, reason, services.clock.now()))
    if state == "active":
        services.wake()
    return json({"id": webhook.name, **row})


async def pause(request: web.Request) -> web.Response:
    """Hold this webhook's deliveries until it is activated; kept across restarts."""
    return await _set_state(request, "paused", "paused through the API")


async def activate(request: web.Request) -> web.Response:
    """Release held deliveries; a disabled webhook starts a new run of health."""
    return await _set_state(request, "active", None)


def _time(body: dict[str, Any], name: str) -> datetime:
    return parse_rfc3339_field(body.get(name), name, code="invalid_window")


def _window(body: object) -> tuple[datetime, datetime | None]:
    if not isinstance(body, dict) or "since" not in body:
        raise error(400, "invalid_window", 'send {"since": RFC 3339 time, "until"?: RFC 3339 time}')
    unknown = sorted(set(body) - {"since", "until"})
    if unknown:
        raise error(400, "invalid_window", f"unknown field '{unknown[0]}': send since and until")
    since = _time(body, "since")
    until = _time(body, "until") if body.get("until") is not None else None
    if until is not None and until <= since:
        raise error(400, "invalid_window", "until must be later than since")
    return since, until


async def recover(request: web.Request) -> web.Response:
    """Re-queue every failed delivery created in ``[since, until)``; answer the count."""
    require(request, "webhooks:write")
    webhook = webhook_of(request)
    services = request.app[WEBHOOKS].services
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise error(400, "invalid_json", "the body is not JSON") from None
    since, until = _window(body)
    now = services.clock.now()
    key = group_key(webhook.name)
    count = await recover_failed(services.writer, services.wake, key, since, until, now)
    return json(
        {"id": webhook.name, "recovered": count, "since": since, "until": until}, status=202
    )


async def list_event_types(request: web.Request) -> web.Response:
    """The event catalog: each type with its JSON Schema and an example payload."""
    require(request, "webhooks:read")
    rules = rules_of(request)
    return json({"events": [describe(spec) for spec in rules.ir.events]})
