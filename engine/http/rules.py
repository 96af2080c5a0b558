"""``/api/rules``: the rule set being served, the last failed reload, and forced reloads."""

from __future__ import annotations

from aiohttp import web

from engine.http.common import engine_of, json, require

__all__ = ["add_routes"]


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/rules", get_rules)
    app.router.add_post("/api/rules/reload", reload_rules)


async def get_rules(request: web.Request) -> web.Response:
    require(request, "rules:read")
    rules = engine_of(request).rules
    current = rules.current
    body: dict[str, object] = {"version": None, "last_failure": None}
    if current is not None:
        ir = current.rule_set.ir
        body |= {
            "version": current.rule_set.version,
            "applied_at": current.applied_at,
            "git_commit": current.git_commit,
            "files": list(current.files),
            "counts": {
                "events": len(ir.events),
                "webhooks": len(ir.webhooks),
                "templates": len(ir.templates),
                "workflows": len(ir.workflows),
                "hooks": len(ir.hooks),
            },
        }
    if rules.last_failure is not None:
        body["last_failure"] = rules.last_failure.as_dict()
    return json(body)


async def reload_rules(request: web.Request) -> web.Response:
    require(request, "admin")
    engine = engine_of(request)
    outcome = await engine.reload("api")
    return json(outcome.as_dict(), status=422 if outcome.status == "failed" else 200)
