"""What a run's steps cause: jobs of each capability, events, timers and waits.

An action step is a job of its capability with the idempotency key
``<run>:<step>`` (``:<round>`` after a `retry_from`), so that a step started
twice is one delivery, one email, one request: ``send_webhook`` a webhook
delivery, ``send_email`` an email, ``http`` a request, ``update_record`` a
record write (at once in the engine's own table, or a job for an HTTP
store). Its job's caller names the step, and its end is the step's result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, insert, or_, select
from sqlalchemy.engine import Connection, Row

from dsl import ir, truthy
from engine.core.schema import events
from engine.core.writer import after_commit
from engine.email.sending import ComposeError, Composer, queue_emails
from engine.events.bus import Bus, StoredEvent
from engine.jobs.kinds import Ended
from engine.jobs.queue import NewJob
from engine.records.store import RecordError, update_record
from engine.workflows.program import Checkpoint, Walk
from engine.workflows.runs import Runs, caller_of, typed_event
from engine.workflows.tables import workflow_waits
from engine.workflows.values import dump, plain

if TYPE_CHECKING:
    from engine.webhooks.planner import WebhookPlanner

__all__ = ["LOOKBACK", "Actors", "StepEffects", "matches", "result_of", "step_key"]

LOOKBACK = 1_000  # events a `wait for` reads back, at most, for one that came before it
_ENV = re.compile(r'^env\("([A-Za-z_][A-Za-z0-9_]*)"(?:, "((?:[^"\\]|\\.)*)")?\)$')
_HTTP_TIMEOUT = 30.0
_HTTP_ATTEMPTS = 3


def step_key(run_id: str, step_id: str, round_: int) -> str:
    """The idempotency key of a step's job: ``<run>:<step>``, with the round after the first."""
    return f"{run_id}:{step_id}" if round_ == 1 else f"{run_id}:{step_id}:{round_}"


def matches(pattern: str, event_type: str) -> bool:
    """Whether an event pattern (``*`` is one segment) matches ``event_type``."""
    want, got = pattern.split("."), event_type.split(".")
    return len(want) == len(got) and all(w in ("*", g) for w, g in zip(want, got, strict=True))


@dataclass
class Actors:
    """What starts action steps: the other capabilities' ways in, where this engine has them."""

    bus: Bus
    runs: Runs
    wake: Callable[[], None]
    webhooks: WebhookPlanner | None = None
    composer: Callable[[], Composer | None] = lambda: None
    email_attempts: int = 8
    records: Any = None  # the [records] section, when records run


class StepEffects:
    """The effects of one advance of one run, on the transaction's connection."""

    def __init__(self, actors: Actors, conn: Connection, jobs: list[NewJob], run: Row[Any]) -> None:
        self.actors = actors
        self.conn = conn
        self.jobs = jobs
        self.run = run

    def act(self, walk: Walk, step_id: str, step: ir.Step, args: dict[str, Any]) -> Checkpoint:
        key = step_key(walk.run_id, step_id, walk.round)
        caller = caller_of(walk.run_id, f"step:{step_id}:{walk.round}")
        kind = step.kind if not isinstance(step, ir.ActionStep) else step.action
        point = Checkpoint(step_id, kind, "running", step.name, job_key=key, started_at=walk.now)
        try:
            if isinstance(step, ir.SendWebhookStep):
                self.webhook(walk, step, args, key, caller, point)
            elif isinstance(step, ir.SendEmailStep):
                self.email(walk, step, args, key, caller, point)
            elif isinstance(step, ir.ActionStep) and step.action == "http":
                self.http(walk, step, args, key, caller, point)
            elif isinstance(step, ir.ActionStep) and step.action == "update_record":
                self.record(walk, args, key, caller, point)
            else:
                raise _Refused(f"{kind}() needs the payments capability, not running here")
        except _Refused as refused:
            point.status, point.error, point.finished_at = "failed", str(refused), walk.now
        return point

    def webhook(
        self,
        walk: Walk,
        step: ir.SendWebhookStep,
        args: dict[str, Any],
        key: str,
        caller: str,
        point: Checkpoint,
    ) -> None:
        planner = self.actors.webhooks
        if planner is None:
            raise _Refused("send_webhook needs the webhooks capability, not running here")
        payload = args["payload"]
        data = plain(payload) if payload is not None else plain(walk.event.get("data"))
        body = {
            "id": key,
            "type": f"workflow.{walk.program.workflow.name}",
            "created_at": plain(walk.now),
            "data": data,
        }
        job = planner.message(
            walk.rules,
            step.webhook,
            body=body,
            key=key,
            event_id=self.run.event_id,
            caller=caller,
            timeout=step.timeout_seconds,
        )
        if step.retry is not None:
            definition = {**job.payload["definition"], "retry": step.retry.model_dump(mode="json")}
            job = job._replace(
                max_attempts=step.retry.attempts, payload={**job.payload, "definition": definition}
            )
        point.input = {"webhook": step.webhook, "data": data}
        self.jobs.append(job)

    def email(
        self,
        walk: Walk,
        step: ir.SendEmailStep,
        args: dict[str, Any],
        key: str,
        caller: str,
        point: Checkpoint,
    ) -> None:
        composer = self.actors.composer()
        if composer is None:
            raise _Refused("send_email needs the email capability, not running here")
        variables = args["variables"]
        data = plain(variables if variables is not None else walk.event.get("data") or {})
        to = plain(args["to"])
        try:
            email = composer.template(
                walk.rules,
                step.template,
                to,
                data,
                key=key,
                cause="workflow",
                event_id=self.run.event_id,
            )
        except ComposeError as exc:
            raise _Refused(str(exc)) from None
        except Exception as exc:  # a template gone from disk, a render bug
            raise _Refused(f"{type(exc).__name__}: {exc}") from None
        attempts = step.retry.attempts if step.retry else self.actors.email_attempts
        email = dataclasses.replace(email, caller=caller)
        queued = queue_emails(self.conn, [email], walk.now, max_attempts=attempts)
        point.input = {"template": step.template, "to": email.recipient, "email": queued[0].id}
        after_commit(self.conn, self.actors.wake)

    def http(
        self,
        walk: Walk,
        step: ir.ActionStep,
        args: dict[str, Any],
        key: str,
        caller: str,
        point: Checkpoint,
    ) -> None:
        url_text = next(a.expr for a in step.args if a.name == "url")
        url = _env_ref(url_text) or plain(args.get("url"))
        headers = args.get("headers") or {}
        payload = {
            "method": str(args.get("method") or "POST"),
            "url": url,
            "headers": {str(k): str(plain(v)) for k, v in headers.items()}
            if isinstance(headers, dict)
            else {},
            "body": plain(args.get("body")),
            "timeout_seconds": step.timeout_seconds or _HTTP_TIMEOUT,
            "idempotency_key": key,
            "retry": step.retry.model_dump(mode="json") if step.retry else None,
        }
        point.input = {"method": payload["method"], "url": url, "body": payload["body"]}
        self.jobs.append(
            NewJob(
                kind="http",
                payload=payload,
                idempotency_key=key,
                max_attempts=step.retry.attempts if step.retry else _HTTP_ATTEMPTS,
                due_at=walk.now,
                event_id=self.run.event_id,
                rule_set=self.run.version,
                caller=caller,
            )
        )

    def record(
        self, walk: Walk, args: dict[str, Any], key: str, caller: str, point: Checkpoint
    ) -> None:
        config = self.actors.records
        if config is None:
            raise _Refused("update_record needs the records capability, not running here")
        record, record_id = str(args.get("record")), str(plain(args.get("id")))
        fields = plain(args.get("fields") or {})
        point.input = {"record": record, "id": record_id, "fields": fields}
        try:
            update = update_record(
                self.conn,
                self.actors.bus,
                config,
                record,
                record_id,
                fields,
                key=key,
                caller=caller,
                now=walk.now,
            )
        except RecordError as exc:  # raised before anything is written
            raise _Refused(str(exc)) from None
        if update.job is not None:
            self.jobs.append(update.job)
            return
        point.status, point.finished_at = "completed", walk.now
        point.output = dump({"id": record_id, "record": record, **(update.result or {})})

    def emit(self, walk: Walk, step_id: str, event_type: str, data: dict[str, Any]) -> str:
        seed = f"{walk.run_id}:{step_id}:{walk.round}"
        event_id = "evt_" + hashlib.sha256(seed.encode()).hexdigest()[:32]
        event = StoredEvent(
            id=event_id,
            type=event_type,
            data=data,
            occurred_at=walk.now,
            received_at=walk.now,
            source=f"workflow:{walk.program.workflow.name}",
            subject=walk.run_id,
        )
        self.actors.bus.emit(self.conn, [event])
        return event_id

    def wake(self, walk: Walk, step_id: str, at: datetime) -> None:
        ref = f"due:{step_id}:{walk.round}"
        self.jobs.append(self.actors.runs.move(walk.run_id, ref, at, walk.rules))

    def wait(self, walk: Walk, step_id: str, step: ir.WaitForStep) -> None:
        rows = [
            {"pattern": p, "run_id": walk.run_id, "step": step_id, "round": walk.round}
            for p in dict.fromkeys(step.events)
        ]
        self.conn.execute(insert(workflow_waits), rows)

    def lookback(self, walk: Walk, step: ir.WaitForStep, name: str | None) -> Any:
        exact = [p for p in step.events if "*" not in p]
        prefixes = [p.split("*", 1)[0] for p in step.events if "*" in p]
        conditions: list[ColumnElement[bool]] = [events.c.type.in_(exact)] if exact else []
        conditions += [events.c.type.startswith(prefix) for prefix in prefixes]
        query = (
            select(events)
            .where(events.c.seq > self.run.event_seq, or_(*conditions))
            .order_by(events.c.seq)
            .limit(LOOKBACK)
        )
        for row in self.conn.execute(query):
            if row.id == self.run.event_id or not any(matches(p, row.type) for p in step.events):
                continue
            found = envelope(walk, row)
            if step.where is None or truthy(walk.evaluate(step.where, {name or "": found})):
                return found
        return None


class _Refused(Exception):
    """The step cannot start: it fails with this message."""


def envelope(walk: Walk, row: Any) -> dict[str, Any]:
    """A stored event as a step's expressions see it."""
    stored = {
        "id": row.id,
        "type": row.type,
        "time": row.occurred_at,
        "source": row.source,
        "subject": row.subject,
        "data": row.data,
    }
    return typed_event(walk.rules, stored)


def _env_ref(expression: str) -> dict[str, Any] | None:
    """An argument that is just ``env("NAME"[, "default"])`` stays a reference: the job
    keeps the variable's name, and the value is read when the request is sent."""
    found = _ENV.match(expression)
    if found is None:
        return None
    default = found.group(2)
    return {"env": found.group(1), "default": default}


def result_of(point: Checkpoint, end: Ended) -> Any:
    """The result of an action step whose job ended successfully, as tagged JSON."""
    detail: Mapping[str, Any] = end.record.detail if end.record is not None else {}
    given = point.input if isinstance(point.input, dict) else {}
    if point.kind == "send_webhook":
        result = {
            "id": point.job_key,
            "status": "delivered",
            "response_status": detail.get("status"),
        }
    elif point.kind == "send_email":
        outcome = end.record.outcome if end.record is not None else "sent"
        result = {"id": given.get("email"), "status": outcome}
    elif point.kind == "http":
        result = {
            "status": detail.get("status"),
            "headers": detail.get("headers") or {},
            "body": detail.get("body"),
        }
    else:
        result = {"id": given.get("id"), "record": given.get("record"), **detail}
    return dump(result)
