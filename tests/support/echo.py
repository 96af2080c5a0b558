"""A capability that exists only in the tests, registered with the contract webhooks use.

``echo`` plans one job of kind ``workflow`` per matched workflow of the rules
(the language has them; no capability runs them yet), fails each job's first
attempt and succeeds the second, writes a row of its own table with each
success (a table created by a migration branch of its own), counts its runs
on the engine's registry and answers ``GET /api/echo/{id}``. Not a line of the
core knows it: the tests add it to the capabilities they build the engine with.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import Counter
from pydantic import Field
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from dsl import RuleSet, Subscription
from engine.capability import Capability, Runtime, Services
from engine.config import Section
from engine.events.bus import StoredEvent
from engine.http.common import error, json, require
from engine.jobs.kinds import AttemptRecord, JobKind, Result, Retry, Succeeded
from engine.jobs.queue import FinishJob, Job, NewJob

KIND = "workflow"

# Its own metadata, so that the core's (which the schema tests compare with the
# core's migrations) does not hold a table only the tests create.
echo_runs = Table(
    "echo_runs",
    MetaData(),
    Column("job_id", Integer, primary_key=True),
    Column("workflow", String(200), nullable=False),
)


class EchoConfig(Section):
    retry_after: float = Field(default=30.0, gt=0)


class Planner:
    def plan(
        self, conn: Connection, rules: RuleSet, subscription: Subscription, event: StoredEvent
    ) -> Sequence[NewJob]:
        assert subscription.name in rules.workflows  # the planner reads its rule set
        return [
            NewJob(
                kind=KIND,
                payload={"workflow": subscription.name},
                idempotency_key=f"{KIND}:{subscription.name}:{event.id}",
                max_attempts=3,
                due_at=event.received_at,
                event_id=event.id,
                rule_set=rules.version,
            )
        ]


class Ran:
    """The finish hook: a row of the capability's own table, with the job's outcome."""

    def __init__(self, runtime: Echo) -> None:
        self.runtime = runtime

    @classmethod
    def apply_all(cls, conn: Connection, finished: Sequence[tuple[FinishJob, bool]]) -> None:
        rows = [{"job_id": f.job_id, "workflow": KIND} for f, kept in finished if kept]
        if rows:
            conn.execute(insert(echo_runs), rows)

    def committed(self) -> None:
        self.runtime.runs.inc()


class Handler:
    def __init__(self, runtime: Echo) -> None:
        self.runtime = runtime
        self.started = self.stopped = self.closed = False

    async def start(self) -> None:
        self.started = True

    async def run(self, job: Job) -> Result:
        now = self.runtime.services.clock.now()
        if job.attempts == 1:
            attempt = AttemptRecord("echo_refused", now, 0.0, "Refused", "first attempts fail")
            return Retry(self.runtime.retry_after, "first attempts fail", attempt=attempt)
        detail = {
            "workflow": job.payload["workflow"],
            "body": "x" * 1_200_000,
            "rows": list(range(100_000)),
        }
        attempt = AttemptRecord("echoed", now, 0.001, detail=detail)
        return Succeeded(attempt=attempt, hook=Ran(self.runtime))

    def stop(self) -> None:
        self.stopped = True

    async def close(self) -> None:
        self.closed = True


class Echo:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.retry_after = services.section.retry_after
        self.runs = Counter("ownly_echo_runs", "Echo jobs done.", registry=services.registry)
        self.handler = Handler(self)

    @property
    def kinds(self) -> Sequence[JobKind]:
        return (JobKind(KIND, self.handler, Planner(), target=lambda j: j.payload["workflow"]),)

    def add_routes(self, app: web.Application) -> None:
        app[ECHO_RUNTIME] = self
        app.router.add_get("/api/echo/{id}", get_run)

    async def refresh_gauges(self, conn: AsyncConnection) -> None:
        return None


async def get_run(request: web.Request) -> web.Response:
    require(request, "echo:read")
    text = request.match_info["id"]
    runtime = request.app[ECHO_RUNTIME]
    async with runtime.services.database.connect() as conn:
        row = (await conn.execute(select(echo_runs).where(echo_runs.c.job_id == int(text)))).first()
    if row is None:
        raise error(404, "not_found", f"no echo run {text}")
    body: dict[str, Any] = {"job_id": row.job_id, "workflow": row.workflow}
    return json(body)


ECHO_RUNTIME = web.AppKey("echo", Echo)


def _build(services: Services) -> Runtime:
    return Echo(services)


ECHO = Capability(
    name="echo",
    build=_build,
    section=EchoConfig,
    scopes=("echo:read",),
    migrations=Path(__file__).with_name("echo_migrations"),
)
