"""What starts, resumes and cancels runs: events, schedules, the end of their jobs.

- ``RunPlanner``: an event that matched `on PATTERNS [when COND]` (or a hook's
  ``hook.NAME`` event) starts a run, in the event's transaction.
- ``RunWatcher``: every new event resumes the runs waiting for it whose
  `where` holds, and cancels the runs whose `cancel on` it matches, in the
  transaction that stores it.
- ``RunFollower``: the end of a run's job (a step's, a timer's) advances it in
  the transaction that records the end; the end of a schedule's job starts
  that slot's run and plans the next slot.
- ``Schedules``: every schedule of a rule set being applied gets its next
  slot, once; a slot missed while the engine was down runs once, at start.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from dsl import Context, RuleSet, Subscription, truthy
from engine.core.schema import jobs as job_table
from engine.core.writer import after_commit
from engine.events.bus import StoredEvent
from engine.jobs.kinds import Ended
from engine.jobs.queue import NewJob, insert_jobs
from engine.workflows import KIND
from engine.workflows.program import Checkpoint
from engine.workflows.runs import Runs, Trigger, typed_event
from engine.workflows.schedule import Slot, next_slot
from engine.workflows.steps import matches, result_of
from engine.workflows.tables import (
    FINISHED,
    workflow_runs,
    workflow_schedules,
    workflow_steps,
    workflow_waits,
)
from engine.workflows.values import dump, load

__all__ = ["RunFollower", "RunPlanner", "RunWatcher", "Schedules", "event_trigger"]


def event_trigger(event: StoredEvent) -> Trigger:
    kind = "hook" if event.type.startswith("hook.") else "event"
    return Trigger(kind, event.envelope(), event.id)


class RunPlanner:
    """A matched workflow trigger starts a run."""

    def __init__(self, runs: Runs) -> None:
        self._runs = runs

    def plan(
        self, conn: Connection, rules: RuleSet, subscription: Subscription, event: StoredEvent
    ) -> Sequence[NewJob]:
        now = event.received_at
        _, jobs = self._runs.start(conn, rules, subscription.name, event_trigger(event), now)
        return jobs


def _candidates(event_type: str) -> list[str]:
    """Every pattern that matches ``event_type``: each segment itself or ``*``."""
    segments = event_type.split(".")
    if len(segments) > 6:
        return [event_type]
    return [".".join(p) for p in itertools.product(*[(s, "*") for s in segments])]


class RunWatcher:
    """New events resume the runs waiting for them and cancel the runs they cancel."""

    def __init__(self, runs: Runs, env: Mapping[str, str]) -> None:
        self._runs = runs
        self._env = env

    def watch(
        self, conn: Connection, rules: RuleSet | None, events: Sequence[StoredEvent], now: datetime
    ) -> Sequence[NewJob]:
        jobs: list[NewJob] = []
        patterns = {p: None for e in events for p in _candidates(e.type)}
        waits = conn.execute(
            select(workflow_waits).where(workflow_waits.c.pattern.in_(list(patterns)))
        ).all()
        resumed: set[str] = set()
        for event in events:
            for wait in waits:
                if wait.run_id in resumed or not matches(wait.pattern, event.type):
                    continue
                if self._resume(conn, wait, event, now, jobs):
                    resumed.add(wait.run_id)
        if rules is not None:
            for event in events:
                self._cancel(conn, rules, event, now)
        return jobs

    def _resume(
        self, conn: Connection, wait: Any, event: StoredEvent, now: datetime, jobs: list[NewJob]
    ) -> bool:
        run = conn.execute(select(workflow_runs).where(workflow_runs.c.id == wait.run_id)).first()
        if run is None or run.status in FINISHED:
            return False
        rules = self._runs.versions.get(conn, run.version)
        program = self._runs.versions.program(rules, run.workflow) if rules else None
        if rules is None or program is None:
            return False
        step = program.steps.get(wait.step)
        where = getattr(step, "where", None)
        incoming = typed_event(rules, event.envelope())
        if where is not None:
            values = {k: load(v) for k, v in (run.variables or {}).items()}
            values["event"] = typed_event(rules, run.event)
            values[step.name or ""] = incoming  # type: ignore[union-attr]
            if not truthy(rules.evaluate(where, Context(values=values, now=now, env=self._env))):
                return False
        done = conn.execute(
            update(workflow_steps)
            .where(
                workflow_steps.c.run_id == run.id,
                workflow_steps.c.step == wait.step,
                workflow_steps.c.round == wait.round,
                workflow_steps.c.status == "waiting",
            )
            .values(status="completed", output=dump(incoming), finished_at=now)
        )
        conn.execute(
            delete(workflow_waits).where(
                workflow_waits.c.run_id == run.id, workflow_waits.c.step == wait.step
            )
        )
        if not done.rowcount:
            return False
        ref = f"resume:{wait.step}:{wait.round}:{event.id}"[:250]
        jobs.append(self._runs.move(run.id, ref, now, rules))
        return True

    def _cancel(self, conn: Connection, rules: RuleSet, event: StoredEvent, now: datetime) -> None:
        for workflow in rules.workflows.values():
            if not any(
                any(matches(p, event.type) for p in trigger.events)
                for trigger in workflow.cancel_on
            ):
                continue
            runs = conn.execute(
                select(workflow_runs).where(
                    workflow_runs.c.workflow == workflow.name,
                    workflow_runs.c.status.not_in(FINISHED),
                )
            ).all()
            for run in runs:
                if self._cancels(conn, run, event, now):
                    self._runs.end(conn, run, "cancelled", now, error=f"cancelled by {event.type}")

    def _cancels(self, conn: Connection, run: Any, event: StoredEvent, now: datetime) -> bool:
        rules = self._runs.versions.get(conn, run.version)
        workflow = rules.workflows.get(run.workflow) if rules else None
        if rules is None or workflow is None:
            return False
        incoming = typed_event(rules, event.envelope())
        values = {"event": typed_event(rules, run.event), "incoming": incoming}
        context = Context(values=values, now=now, env=self._env)
        for trigger in workflow.cancel_on:
            if not any(matches(p, event.type) for p in trigger.events):
                continue
            if trigger.when is None or truthy(rules.evaluate(trigger.when, context)):
                return True
        return False


class RunFollower:
    """The end of a run's job advances the run; a schedule's starts the slot's run."""

    def __init__(self, runs: Runs, schedules: Schedules, step_seconds: Any = None) -> None:
        self._runs = runs
        self._schedules = schedules
        self._step_seconds = step_seconds  # a Histogram by step kind

    def follow(self, conn: Connection, ended: Sequence[Ended]) -> None:
        for end in ended:
            _, run_id, ref = end.caller.split(":", 2)
            if run_id == "schedule":
                self._schedules.fire(conn, end.job_id, end.now)
                continue
            if ref.startswith("step:"):
                _, step_id, round_ = ref.rsplit(":", 2)
                timed = _step_ended(conn, run_id, step_id, int(round_), end)
                if timed is not None and self._step_seconds is not None:
                    observe = self._step_seconds.labels(timed[0]).observe
                    after_commit(conn, functools.partial(observe, timed[1]))
            self._runs.advance(conn, run_id, ref, end.now)


def _step_ended(
    conn: Connection, run_id: str, step_id: str, round_: int, end: Ended
) -> tuple[str, float] | None:
    """Record an action step's result, unless its checkpoint was closed already; its
    kind and how long it took."""
    where = (
        workflow_steps.c.run_id == run_id,
        workflow_steps.c.step == step_id,
        workflow_steps.c.round == round_,
    )
    row = conn.execute(select(workflow_steps).where(*where)).first()
    if row is None or row.status != "running":
        return None
    point = Checkpoint(row.step, row.kind, row.status, row.name, row.input, job_key=row.job_key)
    attempts = _attempts(conn, end.job_id)
    if end.outcome == "succeeded":
        values = {"status": "completed", "output": result_of(point, end)}
    else:
        values = {"status": "failed", "error": end.error or "the step's job failed"}
    duration = (end.now - row.started_at).total_seconds()
    conn.execute(
        update(workflow_steps)
        .where(*where)
        .values(finished_at=end.now, duration=duration, attempts=attempts, **values)
    )
    return row.kind, duration


def _attempts(conn: Connection, job_id: int) -> int:
    return int(conn.scalar(select(job_table.c.attempts).where(job_table.c.id == job_id)) or 0)


class Schedules:
    """Each schedule's next slot: a row and the job due then."""

    def __init__(self, runs: Runs, current: Any, wake: Any) -> None:
        self._runs = runs
        self._current = current  # () -> RuleSet | None
        self._wake = wake

    def apply(self, conn: Connection, rules: RuleSet, now: datetime) -> None:
        """Give every schedule of ``rules`` its next slot, unless it has one."""
        known = {(r.workflow, r.cron, r.timezone) for r in conn.execute(select(workflow_schedules))}
        planned: list[NewJob] = []
        for workflow in rules.workflows.values():
            for trigger in workflow.triggers:
                if trigger.kind != "schedule" or trigger.cron is None:
                    continue
                zone = trigger.timezone or "UTC"
                if (workflow.name, trigger.cron, zone) in known:
                    continue
                slot = next_slot(trigger.cron, zone, now)
                planned.append(self._plan(conn, workflow.name, trigger.cron, zone, slot, rules))
        if planned:
            insert_jobs(conn, planned, now)
            after_commit(conn, self._wake)

    def _plan(
        self, conn: Connection, workflow: str, cron: str, zone: str, slot: Slot, rules: RuleSet
    ) -> NewJob:
        values = {"next_slot": slot.key(), "next_at": slot.at}
        found = conn.execute(
            update(workflow_schedules)
            .where(
                workflow_schedules.c.workflow == workflow,
                workflow_schedules.c.cron == cron,
                workflow_schedules.c.timezone == zone,
            )
            .values(**values)
        )
        if not found.rowcount:
            conn.execute(
                insert(workflow_schedules).values(
                    workflow=workflow, cron=cron, timezone=zone, **values
                )
            )
        ref = f"{KIND}:schedule:{workflow}:{slot.key()}"
        return NewJob(
            kind=KIND,
            payload={
                "schedule": {"workflow": workflow, "cron": cron, "timezone": zone},
                "slot": slot.key(),
                "at": slot.at.isoformat(),
                "local": slot.local.isoformat(),
            },
            idempotency_key=f"{ref}:{cron}:{zone}"[:300],
            max_attempts=10,
            due_at=slot.at,
            rule_set=rules.version,
            caller=ref[:300],
        )

    def fire(self, conn: Connection, job_id: int, now: datetime) -> None:
        """A slot has come: its run starts (unless the schedule is gone), the next is planned."""
        payload = conn.scalar(select(job_table.c.payload).where(job_table.c.id == job_id))
        if not isinstance(payload, dict) or "schedule" not in payload:
            return
        schedule = payload["schedule"]
        name, cron, zone = schedule["workflow"], schedule["cron"], schedule["timezone"]
        where = (
            workflow_schedules.c.workflow == name,
            workflow_schedules.c.cron == cron,
            workflow_schedules.c.timezone == zone,
        )
        row = conn.execute(select(workflow_schedules).where(*where)).first()
        if row is None or row.next_slot != payload["slot"]:
            return  # a stale slot: another job holds the schedule
        rules = self._current()
        workflow = rules.workflows.get(name) if rules is not None else None
        if workflow is None or not any(
            t.kind == "schedule" and t.cron == cron and (t.timezone or "UTC") == zone
            for t in workflow.triggers
        ):
            conn.execute(delete(workflow_schedules).where(*where))
            return
        slot = Slot(datetime.fromisoformat(payload["local"]), datetime.fromisoformat(payload["at"]))
        event = {
            "id": f"schedule:{name}:{slot.key()}",
            "type": "schedule",
            "time": slot.at,
            "source": f"schedule:{cron}",
            "subject": zone,
            "data": {"slot": slot.key(), "at": slot.at.isoformat(), "timezone": zone},
        }
        _, started = self._runs.start(conn, rules, name, Trigger("schedule", event), now)
        following = next_slot(cron, zone, slot)
        if following.at <= now:
            following = next_slot(cron, zone, now)  # the slots missed meanwhile run not at all
        started.append(self._plan(conn, name, cron, zone, following, rules))
        insert_jobs(conn, started, now)
        after_commit(conn, self._wake)
