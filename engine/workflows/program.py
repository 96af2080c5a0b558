"""The interpreter: a run's next moves, from its workflow's step tree and its checkpoints.

No Python is replayed. Each time a run advances, the tree of its pinned
workflow is walked from the top: a step with a finished checkpoint gives its
recorded result and is passed; a step whose checkpoint is open (a job out, a
timer, a wait) blocks its branch; the first step without one is started
(``Effects`` makes its job or records it at once) and checkpointed. Because
every choice (an `if`'s branch, a `set` value, an emitted event) is itself a
checkpoint, walking again always takes the same path.

Each step has a stable id: its name, or its place (``s2``, ``s3.b1.s1`` for
the first step of an `if`'s first branch, ``s4.s2`` for a `parallel`'s
second branch, ``paid.else.s1`` inside a `wait for`'s `else`). A
`retry_from` supersedes the checkpoints from its step on and starts the next
round; the ids stay, the round tells the attempts apart.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from dsl import Context, RuleSet, ir, truthy
from engine.workflows.values import dump, load, plain

__all__ = [
    "BLOCKED",
    "DONE",
    "Checkpoint",
    "Effects",
    "Failure",
    "Program",
    "RetryFrom",
    "Walk",
    "children",
    "level",
]

DONE: Literal["done"] = "done"
BLOCKED: Literal["blocked"] = "blocked"
Progress = Literal["done", "blocked"]

# Statuses of a checkpoint whose step is over.
ENDED = ("completed", "failed", "timed_out")


def level(prefix: str, steps: Sequence[ir.Step]) -> list[tuple[str, ir.Step]]:
    """The steps of one block with their ids."""
    return [(step.name or f"{prefix}s{i}", step) for i, step in enumerate(steps, 1)]


def children(step_id: str, step: ir.Step) -> list[tuple[str, Sequence[ir.Step]]]:
    """The blocks inside a step, each with the prefix of its steps' ids."""
    if isinstance(step, ir.IfStep):
        return [(f"{step_id}.b{k}.", b.steps) for k, b in enumerate(step.branches, 1)]
    if isinstance(step, ir.ParallelStep):
        return [(f"{step_id}.", step.steps)]
    if isinstance(step, ir.WaitForStep) and step.on_timeout is not None:
        return [(f"{step_id}.else.", step.on_timeout)]
    return []


def _preorder(prefix: str, steps: Sequence[ir.Step]) -> Iterator[tuple[str, ir.Step]]:
    for step_id, step in level(prefix, steps):
        yield step_id, step
        for inner, block in children(step_id, step):
            yield from _preorder(inner, block)


class Program:
    """A workflow's steps, indexed: each id's step and its place in reading order."""

    def __init__(self, workflow: ir.Workflow) -> None:
        self.workflow = workflow
        self.steps: dict[str, ir.Step] = {}
        self.order: dict[str, int] = {}
        for position, (step_id, step) in enumerate(_preorder("", workflow.steps)):
            self.steps[step_id] = step
            self.order[step_id] = position

    def from_step(self, step_id: str) -> list[str]:
        """The ids of ``step_id`` and every step after it in reading order."""
        start = self.order[step_id]
        return [s for s, position in self.order.items() if position >= start]


@dataclass
class Checkpoint:
    """A step's record in the current round."""

    step: str
    kind: str
    status: str  # running sleeping waiting completed failed timed_out
    name: str | None = None
    input: Any = None
    output: Any = None  # tagged JSON (``values.dump``)
    error: str | None = None
    job_key: str | None = None
    due_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    round: int | None = None  # the round it was made in (None: this walk's)
    changed: bool = True  # to be written


class Failure(Exception):
    """The run fails: a `fail` step, a failed step, a timed-out wait without `else`."""

    def __init__(self, message: str, step: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.step = step


class RetryFrom(Exception):
    """A `retry_from`: run again from ``step`` in the next round."""

    def __init__(self, step: str) -> None:
        super().__init__(step)
        self.step = step


class Effects(Protocol):
    """What steps cause outside the walk: jobs, timers, waits, events."""

    def act(self, walk: Walk, step_id: str, step: ir.Step, args: dict[str, Any]) -> Checkpoint:
        """Start an action step (a job, or a result at once); its checkpoint."""

    def emit(self, walk: Walk, step_id: str, event_type: str, data: dict[str, Any]) -> str:
        """Store an event the run emits; its id."""

    def wake(self, walk: Walk, step_id: str, at: datetime) -> None:
        """Advance the run again at ``at`` (a wait's end, a timeout)."""

    def lookback(self, walk: Walk, step: ir.WaitForStep, name: str | None) -> Any:
        """An awaited event stored since the run started whose `where` holds, or None."""

    def wait(self, walk: Walk, step_id: str, step: ir.WaitForStep) -> None:
        """Index the run as waiting for ``step``'s patterns."""


@dataclass
class Walk:
    """One advance of one run: its state, what the walk found and what it changed."""

    run_id: str
    rules: RuleSet
    program: Program
    event: dict[str, Any]  # what expressions see as `event`
    variables: dict[str, Any]  # named results and `set` values, as values
    checkpoints: dict[str, Checkpoint]
    round: int
    now: datetime
    env: Mapping[str, str]
    effects: Effects
    current: str | None = None  # the first step the run waits on
    waiting: set[str] = field(default_factory=set)  # kinds of what blocks it

    def context(self, extra: Mapping[str, Any] | None = None) -> Context:
        values = {**self.variables, "event": self.event}
        if extra:
            values.update(extra)
        return Context(values=values, now=self.now, env=self.env)

    def evaluate(self, expression: str, extra: Mapping[str, Any] | None = None) -> Any:
        return self.rules.evaluate(expression, self.context(extra))

    def arguments(self, args: Sequence[ir.Arg]) -> dict[str, Any]:
        return {arg.name: self.evaluate(arg.expr) for arg in args}

    # ---- walking

    def run(self) -> Progress:
        return self.block("", self.program.workflow.steps)

    def block(self, prefix: str, steps: Sequence[ir.Step]) -> Progress:
        for step_id, step in level(prefix, steps):
            if self.step(step_id, step) == BLOCKED:
                return BLOCKED
        return DONE

    def step(self, step_id: str, step: ir.Step) -> Progress:
        found = self.checkpoints.get(step_id)
        if found is None:
            found = self.start(step_id, step)
            if found is None:  # a step that is only its blocks: parallel
                return self.parallel(step_id, step) if isinstance(step, ir.ParallelStep) else DONE
            self.checkpoints[step_id] = found
        if found.status in ("sleeping", "waiting") and found.due_at and self.now >= found.due_at:
            self.expire(found, step)
        if found.status in ("running", "sleeping", "waiting"):
            if self.current is None:
                self.current = step_id
            self.waiting.add(found.status)
            return BLOCKED
        if found.status == "failed":
            raise Failure(found.error or f"step {step_id} failed", step_id)
        if step.name is not None:
            self.variables[step.name] = load(found.output)
        if isinstance(step, ir.IfStep):
            chosen = (load(found.output) or {}).get("branch", 0)
            if chosen:
                return self.block(f"{step_id}.b{chosen}.", step.branches[chosen - 1].steps)
        if isinstance(step, ir.WaitForStep) and found.status == "timed_out":
            if step.on_timeout is None:
                raise Failure(f"timed out waiting for {', '.join(step.events)}", step_id)
            return self.block(f"{step_id}.else.", step.on_timeout)
        return DONE

    def parallel(self, step_id: str, step: ir.ParallelStep) -> Progress:
        """Every branch walked; blocked while any is; failed once all settle and one failed."""
        blocked = False
        failure: Failure | None = None
        for branch_id, branch in level(f"{step_id}.", step.steps):
            try:
                if self.step(branch_id, branch) == BLOCKED:
                    blocked = True
            except Failure as exc:
                failure = failure or exc
        if blocked:
            return BLOCKED
        if failure is not None:
            raise failure
        return DONE

    def start(self, step_id: str, step: ir.Step) -> Checkpoint | None:
        """The checkpoint of a step reached for the first time in this round."""
        now = self.now
        done = "completed"
        if isinstance(step, ir.ParallelStep):
            return None
        if isinstance(step, ir.SetStep):
            value = self.evaluate(step.value)
            assert step.name is not None
            self.variables[step.name] = value
            return Checkpoint(step_id, "set", done, step.name, output=dump(value), started_at=now)
        if isinstance(step, ir.IfStep):
            chosen = 0
            for k, branch in enumerate(step.branches, 1):
                if branch.condition is None or truthy(self.evaluate(branch.condition)):
                    chosen = k
                    break
            return Checkpoint(step_id, "if", done, output={"branch": chosen}, started_at=now)
        if isinstance(step, ir.FailStep):
            message = self.evaluate(step.message) if step.message else None
            text = message if isinstance(message, str) else f"failed at step {step_id}"
            raise Failure(text, step_id)
        if isinstance(step, ir.RetryFromStep):
            raise RetryFrom(step.step)
        if isinstance(step, ir.EmitStep):
            data = {name: plain(value) for name, value in self.arguments(step.data).items()}
            event_id = self.effects.emit(self, step_id, step.event, data)
            output = {"id": event_id, "type": step.event}
            return Checkpoint(step_id, "emit", done, step.name, output=output, started_at=now)
        if isinstance(step, ir.WaitStep):
            due = self.wait_until(step)
            self.effects.wake(self, step_id, due)
            return Checkpoint(step_id, "wait", "sleeping", due_at=due, started_at=now)
        if isinstance(step, ir.WaitForStep):
            found = self.effects.lookback(self, step, step.name)
            if found is not None:
                return Checkpoint(
                    step_id, "wait_for", done, step.name, output=dump(found), started_at=now
                )
            due = now + timedelta(seconds=step.timeout_seconds)
            self.effects.wait(self, step_id, step)
            self.effects.wake(self, step_id, due)
            return Checkpoint(step_id, "wait_for", "waiting", step.name, due_at=due, started_at=now)
        args = self.action_arguments(step)
        return self.effects.act(self, step_id, step, args)

    def action_arguments(self, step: ir.Step) -> dict[str, Any]:
        if isinstance(step, ir.SendEmailStep):
            variables = self.arguments(step.variables) if step.variables is not None else None
            return {"to": self.evaluate(step.to), "variables": variables}
        if isinstance(step, ir.SendWebhookStep):
            payload = self.arguments(step.payload) if step.payload is not None else None
            return {"payload": payload}
        assert isinstance(step, ir.ActionStep)
        return self.arguments(step.args)

    def wait_until(self, step: ir.WaitStep) -> datetime:
        if step.duration is not None:
            length = self.evaluate(step.duration)
            if not isinstance(length, timedelta):
                raise Failure(f"wait: {step.duration} is not a duration")
            return self.now + max(length, timedelta(0))
        assert step.until is not None
        at = self.evaluate(step.until)
        if not isinstance(at, datetime):
            raise Failure(f"wait until: {step.until} is not a timestamp")
        return max(at, self.now)

    def expire(self, found: Checkpoint, step: ir.Step) -> None:
        """A wait that has run its time: over, or timed out waiting for its event."""
        found.status = "timed_out" if isinstance(step, ir.WaitForStep) else "completed"
        found.finished_at = self.now
        found.changed = True
        if isinstance(step, ir.WaitForStep) and step.name is not None:
            found.output = None
