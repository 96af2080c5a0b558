"""Runs: started, advanced and ended inside the writer's transactions.

Every change to a run happens in a transaction that also holds what caused
it or what it causes: a run starts in the event's transaction (its first
move is a ``workflow`` job), advances in the transaction that records the
end of one of its jobs (a step's, a timer's), and its checkpoints are
written there with the jobs and events the walk caused. A run ends by
completing, failing, timing out or being cancelled; its pending jobs are
cancelled with it and the next queued run of its concurrency key starts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection, Row

from dsl import Context, RuleSet
from dsl.ir import RuleSetIR
from dsl.payload import typed_view
from engine.core.schema import events, rule_sets
from engine.core.writer import after_commit
from engine.events.bus import StoredEvent
from engine.events.ids import new_id
from engine.jobs.actions import cancel_jobs
from engine.jobs.queue import NewJob, insert_jobs
from engine.workflows import KIND
from engine.workflows.program import Checkpoint, Failure, Program, RetryFrom, Walk
from engine.workflows.tables import (
    FINISHED,
    workflow_runs,
    workflow_states,
    workflow_steps,
    workflow_waits,
)
from engine.workflows.values import dump, load, plain

__all__ = ["MAX_ROUNDS", "Runs", "Trigger", "caller_of", "envelope_of", "typed_event"]

MAX_ROUNDS = 100  # retry_from rounds a run may take, within its timeout
# Holding a concurrency slot: started, or about to be.
_HOLDING = ("pending", "running", "sleeping", "waiting")


def caller_of(run_id: str, ref: str) -> str:
    """The caller of a job a run causes: ``workflow:<run>:<ref>``."""
    return f"{KIND}:{run_id}:{ref}"


def envelope_of(event: Mapping[str, Any]) -> dict[str, Any]:
    """A stored run's `event` as JSON: its time as RFC 3339 text."""
    return {**event, "time": plain(event.get("time"))}


@dataclass(frozen=True)
class Trigger:
    """What starts a run: its kind and the event expressions see."""

    kind: str  # event schedule manual hook rerun
    event: dict[str, Any]  # the envelope: id type time source subject data
    event_id: str | None = None  # a stored event's id


class Versions:
    """Rule sets by version, compiled once from the stored IR."""

    def __init__(self, current: Callable[[], RuleSet | None]) -> None:
        self._current = current
        self._compiled: dict[str, RuleSet] = {}
        self._programs: dict[tuple[str, str], Program] = {}

    def get(self, conn: Connection, version: str) -> RuleSet | None:
        current = self._current()
        if current is not None and current.version == version:
            return current
        return self._stored(conn, version)

    def _stored(self, conn: Connection, version: str) -> RuleSet | None:
        found = self._compiled.get(version)
        if found is None:
            ir_json = conn.scalar(select(rule_sets.c.ir).where(rule_sets.c.version == version))
            if ir_json is None:
                return None
            if len(self._compiled) >= 32:
                self._compiled.clear()
            found = RuleSet.from_ir(RuleSetIR.model_validate(ir_json))
            self._compiled[version] = found
        return found

    def program(self, rules: RuleSet, workflow: str) -> Program | None:
        """The indexed steps of ``workflow`` in ``rules`` (None when it has no such one)."""
        key = (rules.version, workflow)
        found = self._programs.get(key)
        if found is None:
            definition = rules.workflows.get(workflow)
            if definition is None:
                return None
            if len(self._programs) >= 1_000:
                self._programs.clear()
            found = self._programs[key] = Program(definition)
        return found


class Runs:
    """Starts, advances and ends runs on a connection in the writer's transaction."""

    def __init__(
        self,
        versions: Versions,
        effects: Callable[[Connection, list[NewJob], Row[Any]], Any],
        env: Mapping[str, str],
        wake: Callable[[], None],
        emit: Callable[[Connection, list[StoredEvent]], object] | None = None,
        ended: Callable[[str, str], None] | None = None,
    ) -> None:
        self.versions = versions
        self._effects = effects  # makes the Effects of one advance
        self._env = env
        self._wake = wake
        self._emit = emit  # the bus's: a failed run says so
        self._ended = ended  # (workflow, status), once the end is committed

    # ---- starting

    def start(
        self, conn: Connection, rules: RuleSet, name: str, trigger: Trigger, now: datetime
    ) -> tuple[str | None, list[NewJob]]:
        """A run of workflow ``name`` for ``trigger`` (its id, None when none starts:
        paused, a duplicate), with the job that makes its first move."""
        workflow = rules.workflows[name]
        if _paused(conn, name, now):
            return None, []
        context = _context(rules, trigger.event, now, self._env)
        if workflow.dedup is not None:
            key = _key(name, rules.evaluate(workflow.dedup.key, context))
            if _duplicate(conn, key, workflow.dedup.window_seconds, now):
                return None, []
        else:
            key = None
        if workflow.debounce is not None:
            debounce = _key(name, _evaluate(rules, workflow.debounce.key, context))
            later = now + timedelta(seconds=workflow.debounce.seconds)
            found = _debouncing(conn, debounce)
            if found is not None:
                return found.id, self._push_back(conn, found, rules, trigger, later, now)
        else:
            debounce, later = None, now
        status = "debouncing" if debounce is not None else "pending"
        limit = workflow.concurrency
        concurrency = None
        if limit is not None:
            concurrency = _key(name, _evaluate(rules, limit.key, context))
            if debounce is None and _holding(conn, concurrency) >= limit.limit:
                status = "queued"
        run_id = new_id("run")
        data = trigger.event.get("data")
        user = data.get("user_id") if isinstance(data, dict) else None
        timeout = workflow.timeout_seconds
        conn.execute(
            insert(workflow_runs).values(
                id=run_id,
                workflow=name,
                version=rules.version,
                status=status,
                trigger=trigger.kind,
                event=envelope_of(trigger.event),
                event_id=trigger.event_id,
                user_id=str(user) if isinstance(user, str | int) else None,
                event_seq=conn.scalar(select(func.coalesce(func.max(events.c.seq), 0))),
                round=1,
                tick=0,
                variables={},
                concurrency_key=concurrency,
                debounce_key=debounce,
                dedup_key=key,
                timeout_at=now + timedelta(seconds=timeout) if timeout else None,
                created_at=now,
                updated_at=now,
            )
        )
        jobs = [] if status == "queued" else [self.move(run_id, "start:0", later, rules)]
        if timeout:
            jobs.append(self.move(run_id, "timeout", now + timedelta(seconds=timeout), rules))
        return run_id, jobs

    def move(self, run_id: str, ref: str, due: datetime, rules: RuleSet) -> NewJob:
        """A ``workflow`` job that advances the run at ``due``."""
        return NewJob(
            kind=KIND,
            payload={"run": run_id, "move": ref},
            idempotency_key=caller_of(run_id, ref),
            max_attempts=10,
            due_at=due,
            rule_set=rules.version,
            caller=caller_of(run_id, ref),
        )

    def _push_back(
        self,
        conn: Connection,
        run: Row[Any],
        rules: RuleSet,
        trigger: Trigger,
        later: datetime,
        now: datetime,
    ) -> list[NewJob]:
        """A debounced run takes the newest event and starts later."""
        tick = run.tick + 1
        conn.execute(
            update(workflow_runs)
            .where(workflow_runs.c.id == run.id)
            .values(
                event=envelope_of(trigger.event),
                event_id=trigger.event_id,
                tick=tick,
                updated_at=now,
            )
        )
        return [self.move(run.id, f"start:{tick}", later, rules)]

    # ---- advancing

    def advance(self, conn: Connection, run_id: str, ref: str, now: datetime) -> None:
        """Walk the run as far as it goes now, after its job ``ref`` ended."""
        run = conn.execute(select(workflow_runs).where(workflow_runs.c.id == run_id)).first()
        if run is None or run.status in FINISHED or run.status == "queued":
            return
        if ref.startswith("start:"):
            if run.status == "debouncing" and ref != f"start:{run.tick}":
                return  # a later event pushed the start back
            if run.status == "debouncing" and run.concurrency_key is not None:
                rules = self.versions.get(conn, run.version)
                limit = rules.workflows[run.workflow].concurrency if rules else None
                if limit is not None and _holding(conn, run.concurrency_key) >= limit.limit:
                    _set(conn, run.id, now, status="queued")
                    return
        rules = self.versions.get(conn, run.version)
        program = self.versions.program(rules, run.workflow) if rules is not None else None
        if rules is None or program is None:
            self.end(conn, run, "failed", now, error=f"rule set {run.version} is not stored")
            return
        if run.timeout_at is not None and now >= run.timeout_at:
            seconds = program.workflow.timeout_seconds or 0
            self.end(conn, run, "timed_out", now, error=f"timed out after {seconds:g}s")
            return
        jobs: list[NewJob] = []
        checkpoints = _checkpoints(conn, run.id, run.round)
        round_ = run.round
        while True:
            walk = Walk(
                run_id=run.id,
                rules=rules,
                program=program,
                event=typed_event(rules, run.event),
                variables={k: load(v) for k, v in (run.variables or {}).items()},
                checkpoints=checkpoints,
                round=round_,
                now=now,
                env=self._env,
                effects=self._effects(conn, jobs, run),
            )
            try:
                progress = walk.run()
            except RetryFrom as again:
                _save(conn, walk, run, now)
                if round_ >= MAX_ROUNDS:
                    self.insert(conn, jobs, now)
                    self.end(conn, run, "failed", now, error=f"retried {MAX_ROUNDS} times")
                    return
                _supersede(conn, run.id, program.from_step(again.step))
                round_ += 1
                _set(conn, run.id, now, round=round_, variables=_dumped(walk.variables))
                checkpoints = _checkpoints(conn, run.id, round_)
                run = conn.execute(select(workflow_runs).where(workflow_runs.c.id == run_id)).one()
                continue
            except Failure as failure:
                _save(conn, walk, run, now)
                self.insert(conn, jobs, now)
                self.end(conn, run, "failed", now, error=failure.message, step=failure.step)
                return
            break
        _save(conn, walk, run, now)
        self.insert(conn, jobs, now)
        if progress == "done":
            output = {k: plain(v) for k, v in walk.variables.items()}
            self.end(conn, run, "completed", now, output=output)
            return
        status = "waiting" if "waiting" in walk.waiting else "running"
        if status == "running" and walk.waiting == {"sleeping"}:
            status = "sleeping"
        started = run.started_at or now
        _set(conn, run.id, now, status=status, current_step=walk.current, started_at=started)

    def insert(self, conn: Connection, jobs: list[NewJob], now: datetime) -> None:
        """Insert the jobs a run caused; the workers are woken after the commit."""
        if jobs:
            insert_jobs(conn, jobs, now)
            after_commit(conn, self._wake)
            jobs.clear()

    # ---- ending

    def end(
        self,
        conn: Connection,
        run: Row[Any],
        status: str,
        now: datetime,
        *,
        error: str | None = None,
        output: Any = None,
        step: str | None = None,
    ) -> None:
        """End the run: its pending jobs cancelled, its waits dropped, its slot passed on."""
        values: dict[str, Any] = {"status": status, "finished_at": now, "error": error}
        if output is not None:
            values["output"] = output
        if step is not None:
            values["current_step"] = step
        _set(conn, run.id, now, **values)
        # Not for a run that a failure started: a workflow that fails on
        # workflow.failed must not start itself again and again.
        by_failure = run.event.get("type") == "workflow.failed"
        if status in ("failed", "timed_out") and self._emit is not None and not by_failure:
            self._emit(conn, [_failed_event(run, error, now)])
        if self._ended is not None:
            count = self._ended
            after_commit(conn, lambda: count(run.workflow, status))
        cancel_jobs(conn, caller_of(run.id, ""), now)
        conn.execute(delete(workflow_waits).where(workflow_waits.c.run_id == run.id))
        if run.concurrency_key is not None:
            self._next_in_line(conn, run.concurrency_key, now)

    def _next_in_line(self, conn: Connection, key: str, now: datetime) -> None:
        following = conn.execute(
            select(workflow_runs.c.id, workflow_runs.c.version)
            .where(workflow_runs.c.concurrency_key == key, workflow_runs.c.status == "queued")
            .order_by(workflow_runs.c.seq)
            .limit(1)
        ).first()
        if following is None:
            return
        _set(conn, following.id, now, status="pending")
        rules = self.versions.get(conn, following.version)
        if rules is not None:
            self.insert(conn, [self.move(following.id, "start:next", now, rules)], now)

    def cancel(self, conn: Connection, run_id: str, now: datetime, reason: str) -> bool:
        """Cancel a run that has not ended; False when it had."""
        run = conn.execute(select(workflow_runs).where(workflow_runs.c.id == run_id)).first()
        if run is None or run.status in FINISHED:
            return False
        self.end(conn, run, "cancelled", now, error=reason)
        return True


def _failed_event(run: Row[Any], error: str | None, now: datetime) -> StoredEvent:
    """``workflow.failed`` for a run that failed or timed out (its id the run's own)."""
    data = {
        "workflow": run.workflow,
        "execution_id": run.id,
        "error": error or "failed",
        "failed_at": plain(now),
    }
    return StoredEvent(
        id=f"evt_failed_{run.id}",
        type="workflow.failed",
        data=data,
        occurred_at=now,
        received_at=now,
        source=f"workflow:{run.workflow}",
        subject=run.id,
    )


def _context(
    rules: RuleSet, event: dict[str, Any], now: datetime, env: Mapping[str, str]
) -> Context:
    return Context(values={"event": typed_event(rules, event)}, now=now, env=env)


def typed_event(rules: RuleSet, stored: Mapping[str, Any]) -> dict[str, Any]:
    """An event envelope as expressions see it (a run's `event`, an awaited or a
    cancelling one): its time a datetime, its data typed by the catalog."""
    event = dict(stored)
    time = event.get("time")
    if isinstance(time, str):
        event["time"] = datetime.fromisoformat(time.replace("Z", "+00:00"))
    spec = rules.events.get(str(event.get("type")))
    if spec is not None and isinstance(event.get("data"), dict):
        event["data"] = typed_view(spec, event["data"])
    return event


def _evaluate(rules: RuleSet, expression: str | None, context: Any) -> Any:
    return None if expression is None else rules.evaluate(expression, context)


def _key(workflow: str, value: object) -> str:
    text = str(plain(value)) if value is not None else ""
    return f"{workflow}:{text}"[:500]


def _paused(conn: Connection, workflow: str, now: datetime) -> bool:
    state = conn.scalar(
        select(workflow_states.c.status).where(workflow_states.c.workflow == workflow)
    )
    if state != "paused":
        return False
    conn.execute(
        update(workflow_states)
        .where(workflow_states.c.workflow == workflow)
        .values(skipped=workflow_states.c.skipped + 1, updated_at=now)
    )
    return True


def _duplicate(conn: Connection, key: str, window: float | None, now: datetime) -> bool:
    query = select(workflow_runs.c.id).where(workflow_runs.c.dedup_key == key)
    if window is not None:
        query = query.where(workflow_runs.c.created_at > now - timedelta(seconds=window))
    return conn.execute(query.limit(1)).first() is not None


def _debouncing(conn: Connection, key: str) -> Any:
    return conn.execute(
        select(workflow_runs.c.id, workflow_runs.c.tick).where(
            workflow_runs.c.debounce_key == key, workflow_runs.c.status == "debouncing"
        )
    ).first()


def _holding(conn: Connection, key: str) -> int:
    return int(
        conn.scalar(
            select(func.count()).where(
                workflow_runs.c.concurrency_key == key, workflow_runs.c.status.in_(_HOLDING)
            )
        )
        or 0
    )


def _set(conn: Connection, run_id: str, now: datetime, **values: Any) -> None:
    conn.execute(
        update(workflow_runs).where(workflow_runs.c.id == run_id).values(updated_at=now, **values)
    )


def _dumped(variables: Mapping[str, Any]) -> dict[str, Any]:
    return {k: dump(v) for k, v in variables.items()}


def _checkpoints(conn: Connection, run_id: str, round_: int) -> dict[str, Checkpoint]:
    """The run's checkpoints that count in ``round_``: each step's latest, not superseded."""
    found: dict[str, Checkpoint] = {}
    rows = conn.execute(
        select(workflow_steps)
        .where(workflow_steps.c.run_id == run_id, workflow_steps.c.status != "superseded")
        .order_by(workflow_steps.c.round)
    )
    for row in rows:
        found[row.step] = Checkpoint(
            step=row.step,
            kind=row.kind,
            status=row.status,
            name=row.name,
            input=row.input,
            output=row.output,
            error=row.error,
            job_key=row.job_key,
            due_at=row.due_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            round=row.round,
            changed=False,
        )
    return found


def _supersede(conn: Connection, run_id: str, steps: list[str]) -> None:
    conn.execute(
        update(workflow_steps)
        .where(
            workflow_steps.c.run_id == run_id,
            workflow_steps.c.step.in_(steps),
            workflow_steps.c.status != "superseded",
        )
        .values(status="superseded")
    )
    conn.execute(
        delete(workflow_waits).where(
            workflow_waits.c.run_id == run_id, workflow_waits.c.step.in_(steps)
        )
    )


def _save(conn: Connection, walk: Walk, run: Row[Any], now: datetime) -> None:
    """Write the checkpoints the walk made or changed, and the run's variables."""
    new: list[dict[str, Any]] = []
    for point in walk.checkpoints.values():
        if not point.changed:
            continue
        values = _row(point, now)
        if point.round is not None:
            conn.execute(
                update(workflow_steps)
                .where(
                    workflow_steps.c.run_id == walk.run_id,
                    workflow_steps.c.step == point.step,
                    workflow_steps.c.round == point.round,
                )
                .values(values)
            )
        else:
            new.append({"run_id": walk.run_id, "step": point.step, "round": walk.round, **values})
            point.round = walk.round
        point.changed = False
    if new:
        conn.execute(insert(workflow_steps), new)
    _set(conn, walk.run_id, now, variables=_dumped(walk.variables))


def _row(point: Checkpoint, now: datetime) -> dict[str, Any]:
    ended = point.status in ("completed", "failed", "timed_out")
    finished = point.finished_at or (now if ended else None)
    started = point.started_at or now
    return {
        "kind": point.kind,
        "name": point.name,
        "status": point.status,
        "input": point.input,
        "output": point.output,
        "error": point.error,
        "job_key": point.job_key,
        "due_at": point.due_at,
        "started_at": started,
        "finished_at": finished,
        "duration": (finished - started).total_seconds() if finished else None,
    }
