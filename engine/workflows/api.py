"""The workflows API: definitions from the rules, their runs, and what operators do to them.

Definitions live in the rule files: they are read here (with file and line,
triggers, options, the step graph and statistics) and never written
(``405 defined_in_rules``). A workflow is paused or activated here, a run
started by hand, cancelled or run again from a step.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Self

from aiohttp import web
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from dsl import RuleSet, compile_rules, ir, rule_files
from engine.core.schema import jobs
from engine.core.writer import BatchWrite
from engine.http.common import (
    decode_cursor,
    defined_in_rules,
    encode_cursor,
    error,
    json,
    parse_limit,
    read_json,
    require,
    rules_of,
)
from engine.workflows.authoring import library
from engine.workflows.program import children, level
from engine.workflows.runs import Runs, Trigger, caller_of
from engine.workflows.runtime import WORKFLOWS, Workflows
from engine.workflows.tables import FINISHED, workflow_runs, workflow_states, workflow_steps
from engine.workflows.values import load, plain

__all__ = ["add_routes", "step_graph"]

STATUSES = (
    "pending",
    "queued",
    "debouncing",
    "running",
    "sleeping",
    "waiting",
    *FINISHED,
)


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/api/workflows", list_workflows)
    router.add_post("/api/workflows", refuse)
    router.add_get("/api/workflows/executions/{run}", get_run)
    router.add_post("/api/workflows/executions/{run}/cancel", cancel_run)
    router.add_post("/api/workflows/executions/{run}/rerun", rerun)
    # Before /{id}: "templates" is not read as a workflow's name.
    router.add_get("/api/workflows/templates", list_templates)
    router.add_post("/api/workflows/from-template", from_template)
    router.add_get("/api/workflows/{id}", get_workflow)
    router.add_patch("/api/workflows/{id}", refuse)
    router.add_delete("/api/workflows/{id}", refuse)
    router.add_post("/api/workflows/{id}/activate", activate)
    router.add_post("/api/workflows/{id}/pause", pause)
    router.add_post("/api/workflows/{id}/execute", execute)
    router.add_get("/api/workflows/{id}/executions", list_runs)


# ---- definitions


def _seed_type(trigger: ir.Trigger) -> str:
    """The trigger as the platform's plan names it: event, schedule, manual, webhook, condition."""
    if trigger.kind == "hook":
        return "webhook"
    if trigger.kind == "event" and trigger.when is not None:
        return "condition"
    return trigger.kind


def _trigger(trigger: ir.Trigger) -> dict[str, Any]:
    return {"type": _seed_type(trigger), **trigger.model_dump(mode="json", exclude_none=True)}


def step_graph(prefix: str, steps: Sequence[ir.Step]) -> list[dict[str, Any]]:
    """A block's steps as data: id, kind, name and what each holds, nested as written."""
    out = []
    for step_id, step in level(prefix, steps):
        shown: dict[str, Any] = step.model_dump(
            mode="json", exclude={"steps", "branches", "on_timeout"}, exclude_none=True
        )
        shown["id"] = step_id
        blocks = children(step_id, step)
        if isinstance(step, ir.IfStep):
            shown["branches"] = [
                {"condition": b.condition, "steps": step_graph(p, b.steps)}
                for (p, _), b in zip(blocks, step.branches, strict=True)
            ]
        elif isinstance(step, ir.ParallelStep):
            shown["steps"] = step_graph(blocks[0][0], step.steps)
        elif blocks:
            shown["else"] = step_graph(blocks[0][0], blocks[0][1])
        out.append(shown)
    return out


def _definition(workflow: ir.Workflow, state: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": workflow.name,
        "name": workflow.name,
        "description": workflow.description,
        "file": workflow.source.file,
        "line": workflow.source.line,
        "status": state.get("status", "active"),
        "skipped": state.get("skipped", 0),
        "triggers": [_trigger(t) for t in workflow.triggers],
        "options": {
            "timeout_seconds": workflow.timeout_seconds,
            "concurrency": workflow.concurrency.model_dump() if workflow.concurrency else None,
            "debounce": workflow.debounce.model_dump() if workflow.debounce else None,
            "dedup": workflow.dedup.model_dump() if workflow.dedup else None,
            "cancel_on": [t.model_dump(exclude_none=True) for t in workflow.cancel_on],
        },
    }


async def _states(flows: Workflows) -> dict[str, dict[str, Any]]:
    async with flows.services.database.connect() as conn:
        rows = (await conn.execute(select(workflow_states))).all()
    return {r.workflow: {"status": r.status, "skipped": r.skipped} for r in rows}


async def _statistics(flows: Workflows, name: str | None = None) -> dict[str, dict[str, Any]]:
    runs = workflow_runs.c
    counts = select(runs.workflow, runs.status, func.count()).group_by(runs.workflow, runs.status)
    timing = select(
        runs.workflow,
        func.max(runs.created_at),
        func.avg(func.julianday(runs.finished_at) - func.julianday(runs.started_at)),
    ).group_by(runs.workflow)
    if name is not None:
        counts, timing = counts.where(runs.workflow == name), timing.where(runs.workflow == name)
    async with flows.services.database.connect() as conn:
        by_status = (await conn.execute(counts)).all()
        times = (await conn.execute(timing)).all()
    stats: dict[str, dict[str, Any]] = {}
    for workflow, status, count in by_status:
        stats.setdefault(workflow, {"runs": {}})["runs"][status] = count
    for workflow, last, days in times:
        entry = stats.setdefault(workflow, {"runs": {}})
        entry["last_run_at"] = plain(last) if isinstance(last, datetime) else last
        entry["mean_duration_seconds"] = round(days * 86400, 3) if days is not None else None
    return stats


def _workflow(request: web.Request) -> ir.Workflow:
    name = request.match_info["id"]
    workflow = rules_of(request).workflows.get(name)
    if workflow is None:
        raise error(404, "not_found", f"no workflow '{name}'")
    return workflow


async def list_workflows(request: web.Request) -> web.Response:
    require(request, "workflows:read")
    flows = request.app[WORKFLOWS]
    states, stats = await _states(flows), await _statistics(flows)
    listed = []
    for workflow in rules_of(request).workflows.values():
        shown = _definition(workflow, states.get(workflow.name, {}))
        shown["statistics"] = stats.get(workflow.name, {"runs": {}})
        listed.append(shown)
    return json({"workflows": listed})


async def get_workflow(request: web.Request) -> web.Response:
    require(request, "workflows:read")
    flows = request.app[WORKFLOWS]
    workflow = _workflow(request)
    shown = _definition(workflow, (await _states(flows)).get(workflow.name, {}))
    shown["statistics"] = (await _statistics(flows, workflow.name)).get(workflow.name, {"runs": {}})
    shown["steps"] = step_graph("", workflow.steps)
    return json(shown)


async def refuse(request: web.Request) -> web.Response:
    require(request, "workflows:write")
    name = request.match_info.get("id")
    workflow = rules_of(request).workflows.get(name) if name else None
    where = workflow.source if workflow is not None else None
    raise defined_in_rules(
        where.file if where else "rules/",
        where.line if where else None,
        "workflows are defined in the rule files: change them there and commit",
    )


# ---- templates


def _placeholder(placeholder: library.Placeholder) -> dict[str, Any]:
    return {
        "name": placeholder.name,
        "description": placeholder.description,
        "kind": placeholder.kind,
        "default": placeholder.default,
        "required": placeholder.default is None,
    }


async def list_templates(request: web.Request) -> web.Response:
    require(request, "workflows:read")
    listed = [
        {
            "name": t.name,
            "description": t.description,
            "placeholders": [_placeholder(p) for p in t.placeholders],
        }
        for t in library.templates()
    ]
    return json({"templates": listed})


_FROM_TEMPLATE = 'send {"template": "<name>", "name": "<workflow>", "values": {...}}'


async def from_template(request: web.Request) -> web.Response:
    """The rule file a template makes, checked with the engine's rule files; nothing written."""
    require(request, "workflows:write")
    flows = request.app[WORKFLOWS]
    body = await read_json(request)
    if not isinstance(body, dict):
        raise error(422, "invalid_input", _FROM_TEMPLATE)
    if unknown := sorted(set(body) - {"template", "name", "values"}):
        raise error(422, "invalid_input", f"unknown field {unknown[0]!r}: {_FROM_TEMPLATE}")
    values = body.get("values", {})
    for field, value in (("template", body.get("template")), ("name", body.get("name"))):
        if not isinstance(value, str):
            raise error(422, "invalid_input", f"{field} must be a string", field=field)
    if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
        raise error(422, "invalid_input", "values must be an object of strings", field="values")
    try:
        text = library.render(body["template"], body["name"], values)
    except library.UnknownTemplate as exc:
        raise error(404, exc.code, exc.message, field="template") from None
    except library.LibraryError as exc:
        field = "name" if isinstance(exc, library.InvalidName) else f"values.{exc.field}"
        raise error(422, exc.code, exc.message, field=field) from None
    rules = flows.services.rules
    folder = next((p for p in rules.paths if p.is_dir()), rules.paths[0].parent)
    target = folder / f"{body['name']}.ownly"
    shown = _shown(target, flows.services.settings.base_dir)
    if target.exists():
        raise error(409, "file_exists", f"{shown} exists", file=shown)
    async with flows.checking:
        ok, diagnostics = await asyncio.to_thread(
            _check, rules.paths, rules.templates_dir, target.name, text, shown
        )
    answer = {"file": shown, "text": text, "diagnostics": diagnostics}
    if not ok:
        raise error(422, "does_not_compile", f"{shown} does not compile", **answer)
    return json(answer)


def _shown(path: Path, base: Path) -> str:
    """A rule file's path as the project names it: relative to ``ownly.toml``'s folder."""
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()


def _check(
    paths: Sequence[Path], templates_dir: Path, file_name: str, text: str, shown: str
) -> tuple[bool, list[dict[str, object]]]:
    """Compile ``text`` as ``file_name`` beside the rule files; diagnostics name it ``shown``."""
    with tempfile.TemporaryDirectory(prefix="ownly-template-") as folder:
        made = Path(folder) / file_name
        made.write_text(text, encoding="utf-8")
        compilation = compile_rules([*rule_files(paths), made], templates_dir=templates_dir)
        diagnostics = []
        for diagnostic in compilation.diagnostics:
            found = diagnostic.as_dict()
            if Path(diagnostic.span.file).resolve() == made.resolve():
                found["file"] = shown
            diagnostics.append(found)
    return compilation.ok, diagnostics


# ---- writes


@dataclass(frozen=True)
class SetState(BatchWrite[None]):
    """A workflow paused or active (kept across restarts)."""

    workflow: str
    status: str
    now: datetime

    @classmethod
    def apply_all(cls, conn: Connection, writes: Sequence[Self]) -> list[None]:
        for write in writes:
            table = workflow_states
            found = conn.execute(
                update(table)
                .where(table.c.workflow == write.workflow)
                .values(status=write.status, updated_at=write.now)
            )
            if not found.rowcount:
                conn.execute(
                    insert(table).values(
                        workflow=write.workflow,
                        status=write.status,
                        skipped=0,
                        updated_at=write.now,
                    )
                )
        return [None] * len(writes)


@dataclass(frozen=True)
class StartRun(BatchWrite[str | None]):
    """A run started by hand (or again from a step of another run)."""

    runs: Runs
    rules: RuleSet
    workflow: str
    trigger: Trigger
    now: datetime
    copy_from: tuple[str, Sequence[str]] | None = None  # (run, steps whose checkpoints it keeps)

    @classmethod
    def apply_all(cls, conn: Connection, writes: Sequence[Self]) -> list[str | None]:
        started: list[str | None] = []
        for write in writes:
            run_id, new = write.runs.start(
                conn, write.rules, write.workflow, write.trigger, write.now
            )
            if run_id is not None and write.copy_from is not None:
                _copy_checkpoints(conn, write.copy_from[0], run_id, write.copy_from[1])
                conn.execute(
                    update(workflow_runs)
                    .where(workflow_runs.c.id == run_id)
                    .values(rerun_of=write.copy_from[0])
                )
            write.runs.insert(conn, list(new), write.now)
            started.append(run_id)
        return started


def _copy_checkpoints(conn: Connection, source: str, target: str, steps: Sequence[str]) -> None:
    rows = conn.execute(
        select(workflow_steps).where(
            workflow_steps.c.run_id == source,
            workflow_steps.c.step.in_(list(steps)),
            workflow_steps.c.status.in_(("completed", "timed_out")),
        )
    ).all()
    latest = {row.step: row for row in sorted(rows, key=lambda r: r.round)}
    copies = [{**row._asdict(), "run_id": target, "round": 1} for row in latest.values()]
    if copies:
        conn.execute(insert(workflow_steps), copies)


@dataclass(frozen=True)
class CancelRun(BatchWrite[bool]):
    runs: Runs
    run_id: str
    now: datetime

    @classmethod
    def apply_all(cls, conn: Connection, writes: Sequence[Self]) -> list[bool]:
        return [w.runs.cancel(conn, w.run_id, w.now, "cancelled through the API") for w in writes]


async def _set_state(request: web.Request, status: str) -> web.Response:
    require(request, "workflows:write")
    flows = request.app[WORKFLOWS]
    workflow = _workflow(request)
    await flows.services.writer.submit(SetState(workflow.name, status, flows.services.clock.now()))
    return json({"id": workflow.name, "status": status})


async def activate(request: web.Request) -> web.Response:
    return await _set_state(request, "active")


async def pause(request: web.Request) -> web.Response:
    return await _set_state(request, "paused")


async def execute(request: web.Request) -> web.Response:
    """Start a run of a workflow that has `on manual`, with the body's ``data``."""
    require(request, "workflows:write")
    flows = request.app[WORKFLOWS]
    workflow = _workflow(request)
    body = await read_json(request) if request.body_exists else {}
    if not isinstance(body, dict) or set(body) - {"data"}:
        raise error(422, "invalid_input", 'send {"data": {...}}: the run\'s input as an object')
    data = body.get("data", {})
    if not isinstance(data, dict):
        raise error(422, "invalid_input", "data must be an object", field="data")
    if not any(t.kind == "manual" for t in workflow.triggers):
        raise error(409, "not_manual", f"workflow {workflow.name} has no 'on manual' trigger")
    now = flows.services.clock.now()
    event = {
        "id": None,
        "type": "manual",
        "time": now,
        "source": "api",
        "subject": None,
        "data": data,
    }
    rules = rules_of(request)
    run_id = await flows.services.writer.submit(
        StartRun(flows.runs, rules, workflow.name, Trigger("manual", event), now)
    )
    if run_id is None:
        raise error(409, "not_started", f"workflow {workflow.name} is paused or deduplicated")
    return json({"id": run_id, "workflow": workflow.name, "status": "pending"}, status=202)


async def _run_row(flows: Workflows, run_id: str) -> Any:
    if not run_id.startswith("run_") or len(run_id) > 40:
        raise error(404, "not_found", f"no execution '{run_id}'")
    async with flows.services.database.connect() as conn:
        row = (
            await conn.execute(select(workflow_runs).where(workflow_runs.c.id == run_id))
        ).first()
    if row is None:
        raise error(404, "not_found", f"no execution '{run_id}'")
    return row


async def cancel_run(request: web.Request) -> web.Response:
    require(request, "workflows:write")
    flows = request.app[WORKFLOWS]
    row = await _run_row(flows, request.match_info["run"])
    now = flows.services.clock.now()
    if not await flows.services.writer.submit(CancelRun(flows.runs, row.id, now)):
        raise error(409, "finished", f"execution {row.id} has ended ({row.status})")
    return json({"id": row.id, "status": "cancelled"})


async def rerun(request: web.Request) -> web.Response:
    """A new run on the same version, with the checkpoints before ``from``."""
    require(request, "workflows:write")
    flows = request.app[WORKFLOWS]
    body = await read_json(request)
    if not isinstance(body, dict) or set(body) != {"from"} or not isinstance(body["from"], str):
        raise error(422, "invalid_input", 'send {"from": "<step id>"}')
    row = await _run_row(flows, request.match_info["run"])
    async with flows.services.database.connect() as conn:
        rules = await conn.run_sync(lambda c: flows.versions.get(c, row.version))
    program = flows.versions.program(rules, row.workflow) if rules is not None else None
    if rules is None or program is None:
        raise error(409, "version_gone", f"rule set {row.version} is not stored")
    if body["from"] not in program.steps:
        raise error(
            422,
            "unknown_step",
            f"workflow {row.workflow} has no step '{body['from']}'",
            steps=list(program.steps),
        )
    before = [s for s in program.steps if program.order[s] < program.order[body["from"]]]
    trigger = Trigger("rerun", dict(row.event), row.event_id)
    now = flows.services.clock.now()
    run_id = await flows.services.writer.submit(
        StartRun(flows.runs, rules, row.workflow, trigger, now, (row.id, before))
    )
    if run_id is None:
        raise error(409, "not_started", f"workflow {row.workflow} is paused or deduplicated")
    return json({"id": run_id, "rerun_of": row.id, "from": body["from"]}, status=202)


# ---- runs


def _run_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "workflow": row.workflow,
        "version": row.version,
        "status": row.status,
        "trigger": row.trigger,
        "trigger_data": row.event,
        "event_id": row.event_id,
        "user_id": row.user_id,
        "current_step": row.current_step,
        "round": row.round,
        "variables": plain({k: load(v) for k, v in (row.variables or {}).items()}),
        "error": row.error,
        "output": row.output,
        "rerun_of": row.rerun_of,
        "created_at": row.created_at,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
        "duration_seconds": (row.finished_at - row.started_at).total_seconds()
        if row.finished_at and row.started_at
        else None,
    }


async def list_runs(request: web.Request) -> web.Response:
    require(request, "workflows:read")
    flows = request.app[WORKFLOWS]
    workflow = request.match_info["id"]
    limit = parse_limit(request)
    query = (
        select(workflow_runs)
        .where(workflow_runs.c.workflow == workflow)
        .order_by(workflow_runs.c.seq.desc())
        .limit(limit + 1)
    )
    status = request.query.get("status")
    if status is not None:
        if status not in STATUSES:
            raise error(400, "invalid_status", f"status must be one of {', '.join(STATUSES)}")
        query = query.where(workflow_runs.c.status == status)
    if (cursor := request.query.get("cursor")) is not None:
        query = query.where(workflow_runs.c.seq < decode_cursor(cursor))
    async with flows.services.database.connect() as conn:
        rows = (await conn.execute(query)).all()
    page = rows[:limit]
    following = encode_cursor(page[-1].seq) if len(rows) > limit else None
    return json({"executions": [_run_view(r) for r in page], "next_cursor": following})


async def get_run(request: web.Request) -> web.Response:
    """The timeline: each step with input, output, error, attempts, duration, its job."""
    require(request, "workflows:read")
    flows = request.app[WORKFLOWS]
    row = await _run_row(flows, request.match_info["run"])
    prefix = caller_of(row.id, "")
    async with flows.services.database.connect() as conn:
        steps = (
            await conn.execute(
                select(workflow_steps)
                .where(workflow_steps.c.run_id == row.id)
                .order_by(workflow_steps.c.started_at, workflow_steps.c.round)
            )
        ).all()
        caused = (
            await conn.execute(
                select(
                    jobs.c.id, jobs.c.kind, jobs.c.state, jobs.c.idempotency_key, jobs.c.attempts
                )
                .where(jobs.c.caller >= prefix, jobs.c.caller < prefix[:-1] + ";")
                .order_by(jobs.c.id)
            )
        ).all()
    by_key = {j.idempotency_key: j for j in caused}
    timeline = []
    for step in steps:
        job = by_key.get(step.job_key) if step.job_key else None
        timeline.append(
            {
                "step": step.step,
                "round": step.round,
                "kind": step.kind,
                "name": step.name,
                "status": step.status,
                "input": step.input,
                "output": plain(load(step.output)),
                "error": step.error,
                "attempts": step.attempts or (job.attempts if job else 0),
                "due_at": step.due_at,
                "started_at": step.started_at,
                "finished_at": step.finished_at,
                "duration_seconds": step.duration,
                "job": {"id": job.id, "kind": job.kind, "state": job.state} if job else None,
            }
        )
    shown = _run_view(row)
    shown["steps"] = timeline
    shown["jobs"] = [
        {"id": j.id, "kind": j.kind, "state": j.state, "key": j.idempotency_key} for j in caused
    ]
    return json(shown)
