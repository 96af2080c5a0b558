"""The bus: store events and plan the jobs they cause, in one transaction.

``Bus.emit`` is the one way an event enters the database, whoever raises it:
ingest (through ``AppendEvents``, the write ``POST /api/events`` submits), or
the engine itself inside any other write (a webhook disabled, an email
bounced). Inside the writer's transaction it drops events whose id is already
stored (the id is the deduplication key), matches each new event against one
rule set, lets each matched rule's kind plan its jobs with the connection in
hand, and inserts the events and their jobs together — the transactional
outbox. The workers are woken once that transaction commits.

Which effects exist is open: each job kind registers a ``Planner`` under its
name. A matched rule whose kind has no planner in this engine plans nothing
and says so: the event's row lists it, and the log and a counter show it.
Watchers (a kind's ``watcher``) see every new event in that transaction,
whatever it matched: waiting workflow runs are resumed there. ``match`` is the
matching itself, shared with ``ownly simulate``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol, Self

from prometheus_client import Counter
from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from dsl import Context, RuleSet, Subscription
from dsl.payload import typed_view
from engine.core.clock import Clock
from engine.core.logs import Logger
from engine.core.rows import insert_rows
from engine.core.schema import events
from engine.core.writer import BatchWrite, after_commit
from engine.jobs.kinds import Planner, Watcher
from engine.jobs.queue import NewJob, insert_jobs

__all__ = [
    "AppendEvents",
    "Appended",
    "Bus",
    "Matches",
    "StoredEvent",
    "Unplanned",
    "event_context",
    "match",
]


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

    def row(self, rule_set: str | None, unplanned: list[dict[str, str]] | None) -> dict[str, Any]:
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
            "unplanned": unplanned,
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


@dataclass(frozen=True)
class Matches:
    """What an event matched under a rule set: each effect once, in rule order."""

    accepted: list[Subscription] = field(default_factory=list)
    # Matched by type, refused by their `when` (an effect accepted by another
    # pattern or trigger is not listed here).
    refused: list[Subscription] = field(default_factory=list)


def match(
    rules: RuleSet,
    event: StoredEvent,
    now: datetime,
    env: Mapping[str, str],
    *,
    refused: bool = False,
) -> Matches:
    """The rules ``event`` fires: one per (kind, name), whatever patterns or triggers match.

    ``refused`` also lists the subscriptions whose ``when`` is false (what
    ``ownly simulate`` reports as skipped).
    """
    found = Matches()
    seen: set[tuple[str, str]] = set()
    context: Context | None = None
    typed = False  # whether ``context`` holds the data typed by the catalog
    for subscription in rules.match(event.type):
        effect = (subscription.kind, subscription.name)
        if effect in seen:
            continue
        if subscription.when is not None:
            # Typing the payload costs more than most predicates: only when one reads it.
            needs_data = rules.reads_event_data(subscription.when)
            if context is None or (needs_data and not typed):
                context = event_context(event, rules, now, env, typed=needs_data)
                typed = needs_data
            if not rules.accepts(subscription, context):
                if refused:
                    found.refused.append(subscription)
                continue
        seen.add(effect)
        found.accepted.append(subscription)
    if refused:
        accepted = {(s.kind, s.name) for s in found.accepted}
        found.refused[:] = [s for s in found.refused if (s.kind, s.name) not in accepted]
    return found


class Unplanned(NamedTuple):
    """A matched rule whose kind planned nothing: no such kind runs in this engine."""

    kind: str
    name: str

    @property
    def message(self) -> str:
        return f"matched {self.kind} {self.name}: {self.kind}s are not running in this engine"

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "message": self.message}


class Appended(NamedTuple):
    """What became of one submitted event."""

    id: str
    duplicate: bool
    jobs: int
    unplanned: tuple[Unplanned, ...] = ()


class RulesSource(Protocol):
    def rule_set(self) -> RuleSet | None: ...


class Bus:
    """Stores and matches events, plans their jobs through each kind's planner."""

    def __init__(
        self,
        current: RulesSource,
        *,
        clock: Clock,
        wake: Callable[[], None],
        env: Mapping[str, str],
        logger: Logger | None = None,
        unplanned: Counter | None = None,
    ) -> None:
        """``wake``: called once a transaction that created jobs commits."""
        self._current = current
        self._planners: dict[str, Planner] = {}
        self._watchers: list[Watcher] = []
        self.clock = clock
        self._wake = wake
        self._env = env
        self._logger = logger
        self._unplanned = unplanned

    def use(self, planners: Mapping[str, Planner], watchers: Sequence[Watcher] = ()) -> None:
        """Plan the subscriptions of each kind in ``planners`` with its planner; show
        every new event to ``watchers``."""
        self._planners.update(planners)
        self._watchers.extend(watchers)

    def rules(self) -> RuleSet | None:
        """The rule set current now (an event is planned under the one it was checked with)."""
        return self._current.rule_set()

    def plan(
        self, conn: Connection, rules: RuleSet, event: StoredEvent, now: datetime
    ) -> tuple[list[NewJob], tuple[Unplanned, ...]]:
        """The jobs ``event`` causes under ``rules``, and the matched rules nothing planned."""
        planned: list[NewJob] = []
        unplanned: list[Unplanned] = []
        for subscription in match(rules, event, now, self._env).accepted:
            planner = self._planners.get(subscription.kind)
            if planner is None:
                unplanned.append(Unplanned(subscription.kind, subscription.name))
                continue
            planned.extend(planner.plan(conn, rules, subscription, event))
        return planned, tuple(unplanned)

    def emit(
        self,
        conn: Connection,
        new: Sequence[StoredEvent],
        rules: RuleSet | None = None,
        *,
        plan: bool = True,
    ) -> list[Appended]:
        """Store ``new`` events not seen before, with the jobs they cause, on ``conn``.

        Usable inside any write: the events are stored, matched and planned in
        its transaction, and the workers are woken after it commits. ``rules``
        is the rule set to plan under (the current one when None); with
        ``plan`` false the events are stored without matching (a test event
        whose one delivery the caller makes).
        """
        rules = rules if rules is not None else self.rules()
        now = self.clock.now()
        stored = _existing(conn, [event.id for event in new if not event.assigned_id])
        rows: list[dict[str, Any]] = []
        jobs: list[NewJob] = []
        results: list[Appended] = []
        fresh: list[StoredEvent] = []
        for event in new:
            if event.id in stored:
                results.append(Appended(event.id, duplicate=True, jobs=0))
                continue
            stored.add(event.id)
            fresh.append(event)
            planned: list[NewJob] = []
            unplanned: tuple[Unplanned, ...] = ()
            if rules is not None and plan:
                planned, unplanned = self.plan(conn, rules, event, now)
            notes = [note.as_dict() for note in unplanned] or None
            rows.append(event.row(rules.version if rules is not None else None, notes))
            jobs.extend(planned)
            results.append(Appended(event.id, False, len(planned), unplanned))
        if plan and fresh:
            for watcher in self._watchers:
                jobs.extend(watcher.watch(conn, rules, fresh, now))
        insert_rows(conn, events, rows)
        insert_jobs(conn, jobs, now)
        if jobs:
            after_commit(conn, self._wake)
        notices = [(appended.id, note) for appended in results for note in appended.unplanned]
        if notices:
            after_commit(conn, lambda: self._report(notices))
        return results

    def _report(self, notes: list[tuple[str, Unplanned]]) -> None:
        for event_id, note in notes:
            if self._unplanned is not None:
                self._unplanned.labels(note.kind).inc()
            if self._logger is not None:
                self._logger.warning(
                    "bus.unplanned", event_id=event_id, kind=note.kind, name=note.name
                )


@dataclass
class AppendEvents(BatchWrite[list[Appended]]):
    """Store events not seen before, with the jobs they cause under ``rules``
    (the rule set they were checked with)."""

    bus: Bus
    events: Sequence[StoredEvent]
    rules: RuleSet | None = None

    @classmethod
    def apply_all(cls, conn: Connection, writes: Sequence[Self]) -> list[list[Appended]]:
        # A group's writes share one rule set almost always: their events are
        # looked up, inserted and planned together (one statement each), not
        # one request at a time.
        results: list[list[Appended]] = []
        start = 0
        while start < len(writes):
            first = writes[start]
            end = start + 1
            while (
                end < len(writes)
                and writes[end].bus is first.bus
                and writes[end].rules is first.rules
            ):
                end += 1
            run = writes[start:end]
            appended = iter(first.bus.emit(conn, [e for w in run for e in w.events], first.rules))
            results.extend([next(appended) for _ in write.events] for write in run)
            start = end
        return results


_STORED = select(events.c.id).where(events.c.id.in_(bindparam("ids", expanding=True)))


def _existing(conn: Connection, ids: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        found.update(conn.scalars(_STORED, {"ids": chunk}))
    return found
