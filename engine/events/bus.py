"""The bus: store events and plan the jobs they cause, in one transaction.

``AppendEvents`` is the write that ingest submits. Inside the writer's
transaction it drops events whose id is already stored (the id is the
deduplication key), matches each new event against the rule set that is
current at that moment, and inserts the events and their jobs together — the
transactional outbox. Which effects exist is open: each job kind registers a
``Planner``; a rule whose kind has no planner yet plans nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol, Self

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from dsl import Context, RuleSet, Subscription
from dsl.payload import typed_view
from engine.core.clock import Clock
from engine.core.rows import insert_rows
from engine.core.schema import events
from engine.core.writer import BatchWrite
from engine.jobs.queue import NewJob, insert_jobs
from engine.jobs.worker import Waker

__all__ = ["AppendEvents", "Appended", "Bus", "Planner", "StoredEvent", "event_context"]


class StoredEvent(NamedTuple):
    """An event as stored and as rules see it (a tuple: one is made per event ingested)."""

    id: str
    type: str
    data: dict[str, Any]
    occurred_at: datetime
    received_at: datetime
    source: str | None = None
    subject: str | None = None
    # The engine made the id up (UUIDv7): no stored event can have it yet.
    assigned_id: bool = False

    def row(self, rule_set: str | None) -> dict[str, Any]:
        """The ``events`` row, matched by the rule set ``rule_set``."""
        return {
            "id": self.id,
            "type": self.type,
            "source": self.source,
            "subject": self.subject,
            "occurred_at": self.occurred_at,
            "received_at": self.received_at,
            "data": self.data,
            "rule_set": rule_set,
        }

    def envelope(self) -> dict[str, Any]:
        """The event as expressions see it (its time a ``datetime``)."""
        return {
            "id": self.id,
            "type": self.type,
            "time": self.occurred_at,
            "source": self.source,
            "subject": self.subject,
            "data": self.data,
        }


def event_context(
    event: StoredEvent,
    rules: RuleSet,
    now: datetime,
    env: Mapping[str, str],
    *,
    typed: bool = True,
) -> Context:
    """What a rule's expressions see of ``event``: its data typed by the catalog
    (left as received when ``typed`` is false: for expressions that do not read it)."""
    envelope = event.envelope()
    spec = rules.events.get(event.type) if typed else None
    if spec is not None:
        envelope["data"] = typed_view(spec, event.data)
    return Context(values={"event": envelope}, now=now, env=env)


class Planner(Protocol):
    """Turns one matched subscription into the job that carries it out."""

    def plan(self, rules: RuleSet, subscription: Subscription, event: StoredEvent) -> NewJob: ...


class Appended(NamedTuple):
    """What became of one submitted event."""

    id: str
    duplicate: bool
    jobs: int


class Bus:
    """Matches events to rules; owns the planners and wakes the workers."""

    def __init__(
        self,
        current: RulesSource,
        planners: Mapping[str, Planner],
        *,
        clock: Clock,
        waker: Waker,
        env: Mapping[str, str],
    ) -> None:
        self._current = current
        self._planners = dict(planners)
        self.clock = clock
        self.waker = waker
        self._env = env

    def rules(self) -> RuleSet | None:
        return self._current.rule_set()

    def plan(self, rules: RuleSet, event: StoredEvent) -> list[NewJob]:
        """The jobs ``event`` causes under ``rules``, in rule order, one per effect."""
        planned: list[NewJob] = []
        seen: set[tuple[str, str]] = set()
        context: Context | None = None
        typed = False  # whether ``context`` holds the data typed by the catalog
        for subscription in rules.match(event.type):
            effect = (subscription.kind, subscription.name)
            planner = self._planners.get(subscription.kind)
            if effect in seen or planner is None:
                continue
            if subscription.when is not None:
                # Typing the payload costs more than most predicates: only when one reads it.
                needs_data = rules.reads_event_data(subscription.when)
                if context is None or (needs_data and not typed):
                    now = self.clock.now()
                    context = event_context(event, rules, now, self._env, typed=needs_data)
                    typed = needs_data
                if not rules.accepts(subscription, context):
                    continue
            seen.add(effect)
            planned.append(planner.plan(rules, subscription, event))
        return planned


class RulesSource(Protocol):
    def rule_set(self) -> RuleSet | None: ...


@dataclass
class AppendEvents(BatchWrite[list[Appended]]):
    """Store events not seen before, with the jobs they cause."""

    bus: Bus
    events: Sequence[StoredEvent]

    @classmethod
    def apply_all(cls, conn: Connection, writes: Sequence[Self]) -> list[list[Appended]]:
        bus = writes[0].bus
        rules = bus.rules()
        now = bus.clock.now()
        ids = [event.id for write in writes for event in write.events if not event.assigned_id]
        stored = _existing(conn, ids)
        rows: list[dict[str, Any]] = []
        jobs: list[NewJob] = []
        results: list[list[Appended]] = []
        for write in writes:
            outcome = []
            for event in write.events:
                if event.id in stored:
                    outcome.append(Appended(event.id, duplicate=True, jobs=0))
                    continue
                stored.add(event.id)
                planned = bus.plan(rules, event) if rules is not None else []
                rows.append(event.row(rules.version if rules is not None else None))
                jobs.extend(planned)
                outcome.append(Appended(event.id, duplicate=False, jobs=len(planned)))
            results.append(outcome)
        insert_rows(conn, events, rows)
        insert_jobs(conn, jobs, now)
        return results

    def committed(self, result: list[Appended]) -> None:
        if any(appended.jobs for appended in result):
            self.bus.waker.wake()


_STORED = select(events.c.id).where(events.c.id.in_(bindparam("ids", expanding=True)))


def _existing(conn: Connection, ids: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        found.update(conn.scalars(_STORED, {"ids": chunk}))
    return found
