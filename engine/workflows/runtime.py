"""The workflows capability as it runs: its job kind, triggers, routes and gauges.

Its one kind, ``workflow``, is the run's own clock: a job due when the run
should move (its start, a wait's end, a timeout, a resumed wait). The job
does nothing when it runs; its end, recorded by the queue, is where the
follower advances the run. Action steps are jobs of other kinds (a webhook
delivery, an email, an ``http`` request), reached through ``services.peers``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import Gauge
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.capability import Services
from engine.jobs.kinds import JobKind, Result, Succeeded
from engine.jobs.queue import Job
from engine.version import VERSION
from engine.workflows import KIND
from engine.workflows.http import KIND as HTTP_KIND
from engine.workflows.http import HttpHandler, connect_from
from engine.workflows.http import target as http_target
from engine.workflows.runs import Runs, Versions
from engine.workflows.steps import Actors, StepEffects
from engine.workflows.tables import workflow_runs
from engine.workflows.triggers import RunFollower, RunPlanner, RunWatcher, Schedules

if TYPE_CHECKING:
    from engine.email.sending import Composer

__all__ = ["WORKFLOWS", "Workflows"]


class _Moves:
    """Runs ``workflow`` jobs: each only marks a time; its end moves the run."""

    async def start(self) -> None:
        return None

    async def run(self, job: Job) -> Result:
        return Succeeded()

    def stop(self) -> None:
        return None

    async def close(self) -> None:
        return None


def _target(job: Job) -> str | None:
    run = job.payload.get("run")
    if isinstance(run, str):
        return run
    schedule = job.payload.get("schedule")
    return schedule.get("workflow") if isinstance(schedule, dict) else None


class Workflows:
    """Starts, advances and shows runs."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.versions = Versions(services.rules.rule_set)
        self.actors = Actors(bus=services.bus, runs=None, wake=services.wake)  # type: ignore[arg-type]
        self.runs = Runs(
            self.versions,
            lambda conn, jobs, run: StepEffects(self.actors, conn, jobs, run),
            services.environ,
            services.wake,
            services.bus.emit,
        )
        self.actors.runs = self.runs
        self.actors.composer = self._composer
        self.schedules = Schedules(self.runs, services.rules.rule_set, services.wake)
        services.rules.on_apply(self.schedules.apply)
        self._kinds = [
            JobKind(
                KIND,
                _Moves(),
                planner=RunPlanner(self.runs),
                target=_target,
                watcher=RunWatcher(self.runs, services.environ),
                follower=RunFollower(self.runs, self.schedules),
            ),
            *self._http_kind(),
        ]
        self.statuses = Gauge(
            "ownly_workflow_runs",
            "Workflow runs, by status (sleeping and waiting runs among them).",
            ["status"],
            registry=services.registry,
        )
        self._peers_read = False

    def _http_kind(self) -> list[JobKind]:
        services = self.services
        connect = connect_from(
            services.settings,
            concurrency=services.concurrency,
            clock=services.clock,
            user_agent=f"Ownly/{VERSION}",
        )
        handler = HttpHandler(
            connect=connect, clock=services.clock, environ=services.environ, logger=services.logger
        )
        return [JobKind(HTTP_KIND, handler, target=http_target)]

    def _connect_peers(self) -> None:
        """Find the other capabilities' ways in, once every one is built."""
        if self._peers_read:
            return
        self._peers_read = True
        peers = self.services.peers
        webhooks = peers.get("webhooks")
        self.actors.webhooks = getattr(webhooks, "planner", None)
        email = peers.get("email")
        if email is not None:
            self.actors.email_attempts = email.config.max_attempts  # type: ignore[attr-defined]
        if "records" in peers:
            self.actors.records = self.services.settings.section("records")

    def _composer(self) -> Composer | None:
        email = self.services.peers.get("email")
        return getattr(email, "composer", None)

    @property
    def kinds(self) -> Sequence[JobKind]:
        self._connect_peers()
        return self._kinds

    def add_routes(self, app: web.Application) -> None:
        from engine.workflows.api import add_routes

        self._connect_peers()
        app[WORKFLOWS] = self
        add_routes(app)

    async def refresh_gauges(self, conn: AsyncConnection) -> None:
        rows = (
            await conn.execute(
                select(workflow_runs.c.status, func.count()).group_by(workflow_runs.c.status)
            )
        ).all()
        self.statuses.clear()
        for status, count in rows:
            self.statuses.labels(status).set(count)


WORKFLOWS = web.AppKey("workflows", Workflows)
