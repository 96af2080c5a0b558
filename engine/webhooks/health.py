"""A webhook's runtime state and health: active, paused or disabled.

The state is kept per webhook name in ``webhook_state``, across restarts and
rule reloads. Pausing or disabling holds the webhook's job group, so its
pending deliveries stay pending (not dropped) until it is activated again.

Each attempt's outcome is folded into the webhook's health by
``RecordAttempt``, a finish hook: in the same transaction as the job's
outcome (the attempt itself goes to the attempt log). A run of only failures
lasting ``disable_after`` (or one ``410 Gone``) disables the webhook and
emits a ``webhook.disabled`` event through the bus, in that same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Self

from prometheus_client import Counter
from sqlalchemy import ColumnElement, Integer, bindparam, case, func, insert, select, update
from sqlalchemy.engine import Connection

from connectors.webhook import Attempt, Outcome
from engine.core.schema import UNFINISHED, UTCDateTime, jobs
from engine.core.storage import Database
from engine.core.writer import BatchWrite
from engine.events.bus import Bus, StoredEvent
from engine.events.ids import new_event_id
from engine.jobs.groups import hold_group, release_group
from engine.jobs.queue import FinishJob, Job
from engine.webhooks.planner import group_key
from engine.webhooks.tables import webhook_state

__all__ = [
    "DISABLED_EVENT",
    "Health",
    "RecordAttempt",
    "SetState",
    "State",
    "Stats",
    "load_stats",
]

State = Literal["active", "paused", "disabled"]
DISABLED_EVENT = "webhook.disabled"


@dataclass(frozen=True)
class Stats:
    """A webhook's runtime state and what its deliveries came to."""

    name: str
    state: State = "active"
    reason: str | None = None
    changed_at: datetime | None = None
    failing_since: datetime | None = None
    consecutive_failures: int = 0
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    deliveries: int = 0
    successes: int = 0
    failures: int = 0
    pending: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "reason": self.reason,
            "changed_at": self.changed_at,
            "failing_since": self.failing_since,
            "consecutive_failures": self.consecutive_failures,
            "stats": {
                "deliveries": self.deliveries,
                "successes": self.successes,
                "failures": self.failures,
                "pending": self.pending,
                "last_success_at": self.last_success_at,
                "last_failure_at": self.last_failure_at,
            },
        }


_STATE_COLUMNS = (
    "state",
    "reason",
    "changed_at",
    "failing_since",
    "consecutive_failures",
    "last_success_at",
    "last_failure_at",
)


async def load_stats(database: Database, names: Iterable[str]) -> dict[str, Stats]:
    """Runtime state and delivery counts of each webhook in ``names``."""
    wanted = list(names)
    keys = {group_key(name): name for name in wanted}
    async with database.connect() as conn:
        states = {
            row.name: row
            for row in await conn.execute(
                select(webhook_state).where(webhook_state.c.name.in_(wanted))
            )
        }
        counts = {
            keys[key]: (total, succeeded, failed, unfinished)
            for key, total, succeeded, failed, unfinished in await conn.execute(
                _COUNTS, {"keys": list(keys)}
            )
        }
    found = {}
    for name in wanted:
        row = states.get(name)
        base = {column: getattr(row, column) for column in _STATE_COLUMNS} if row else {}
        total, succeeded, failed, unfinished = counts.get(name, (0, 0, 0, 0))
        found[name] = Stats(
            name,
            **base,
            deliveries=total,
            successes=succeeded,
            failures=failed,
            pending=unfinished,
        )
    return found


def _count(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


# Each webhook's deliveries counted from the (group_key, id, state) index alone,
# in its order (counting by group and state needed a sort: 0.6 s against 0.2 s
# for 500,000 deliveries).
_COUNTS = (
    select(
        jobs.c.group_key,
        func.count(),
        _count(jobs.c.state == "succeeded"),
        _count(jobs.c.state == "failed"),
        _count(jobs.c.state.in_(UNFINISHED)),
    )
    .where(jobs.c.group_key.in_(bindparam("keys", expanding=True)))
    .group_by(jobs.c.group_key)
)


_STATE_ROW = select(webhook_state).where(webhook_state.c.name == bindparam("w_name"))
# A finish's health update: the time of a success or failure is kept unless given.
_HEALTH = (
    update(webhook_state)
    .where(webhook_state.c.name == bindparam("w_name"))
    .values(
        failing_since=bindparam("w_failing_since", type_=UTCDateTime()),
        consecutive_failures=bindparam("w_failures", type_=Integer()),
        last_success_at=func.coalesce(
            bindparam("w_success", type_=UTCDateTime()), webhook_state.c.last_success_at
        ),
        last_failure_at=func.coalesce(
            bindparam("w_failure", type_=UTCDateTime()), webhook_state.c.last_failure_at
        ),
    )
)


def _state_row(conn: Connection, name: str, now: datetime) -> dict[str, Any]:
    row = (conn.execute(_STATE_ROW, {"w_name": name})).first()
    if row is not None:
        return dict(row._mapping)
    fresh = {"name": name, "state": "active", "changed_at": now, "consecutive_failures": 0}
    conn.execute(insert(webhook_state).values(fresh))
    return {column: None for column in _STATE_COLUMNS} | fresh


def _change(conn: Connection, name: str, state: State, reason: str | None, now: datetime) -> None:
    values: dict[str, Any] = {"state": state, "reason": reason, "changed_at": now}
    if state == "active":
        values |= {"failing_since": None, "consecutive_failures": 0}
        release_group(conn, group_key(name))
    else:
        hold_group(conn, group_key(name), state, now)
    conn.execute(update(webhook_state).where(webhook_state.c.name == name).values(values))


@dataclass(frozen=True)
class SetState(BatchWrite[dict[str, Any]]):
    """Pause or activate a webhook (an operator's action); answers the new state row."""

    name: str
    state: State
    reason: str | None
    now: datetime

    @classmethod
    def apply_all(cls, conn: Connection, writes: Sequence[Self]) -> list[dict[str, Any]]:
        results = []
        for write in writes:
            _state_row(conn, write.name, write.now)
            _change(conn, write.name, write.state, write.reason, write.now)
            row = _state_row(conn, write.name, write.now)
            results.append({column: row[column] for column in _STATE_COLUMNS})
        return results


class Health:
    """Makes the finish hooks that record attempts and keep each webhook's health."""

    def __init__(self, bus: Bus, *, disable_after: float, outcomes: Counter | None = None) -> None:
        self.bus = bus
        self.disable_after = timedelta(seconds=disable_after)
        self._outcomes = outcomes

    def record(self, job: Job, attempt: Attempt) -> RecordAttempt:
        return RecordAttempt(self, job, attempt)

    def delivered(self, outcome: str) -> None:
        if self._outcomes is not None:
            self._outcomes.labels(outcome).inc()


class RecordAttempt:
    """The webhook's health after an attempt, written with the job's outcome."""

    def __init__(self, health: Health, job: Job, attempt: Attempt) -> None:
        self.health = health
        self.job = job
        self.attempt = attempt
        self.webhook: str = job.payload["webhook"]
        self.outcome: str | None = None

    @classmethod
    def apply_all(cls, conn: Connection, finished: Sequence[tuple[FinishJob, bool]]) -> None:
        """Each webhook's health read and written once for a group of finishes."""
        by_webhook: dict[str, list[tuple[RecordAttempt, FinishJob]]] = {}
        for finish, kept in finished:
            hook = finish.hook
            if isinstance(hook, RecordAttempt) and kept:  # else a newer attempt's outcome counts
                hook.outcome = finish.outcome
                by_webhook.setdefault(hook.webhook, []).append((hook, finish))
        for name, items in by_webhook.items():
            _update_health(conn, name, items)

    def disable(self, conn: Connection, reason: str, failures: int, now: datetime) -> None:
        """Disable the webhook and emit ``webhook.disabled`` in the same transaction."""
        _change(conn, self.webhook, "disabled", reason, now)
        event = StoredEvent(
            id=new_event_id(),
            type=DISABLED_EVENT,
            data={
                "webhook": self.webhook,
                "reason": reason,
                "consecutive_failures": failures,
                "disabled_at": now.isoformat(),
            },
            occurred_at=now,
            received_at=now,
            source="ownly",
            assigned_id=True,
        )
        self.health.bus.emit(conn, [event])

    def committed(self) -> None:
        if self.outcome in ("succeeded", "failed"):
            self.health.delivered(self.outcome)


def _update_health(
    conn: Connection, name: str, finished: list[tuple[RecordAttempt, FinishJob]]
) -> None:
    """Fold a webhook's outcomes, in order, into its health; disable it when it must be."""
    row = _state_row(conn, name, finished[0][1].now)
    state = row["state"]
    failing_since: datetime | None = row["failing_since"]
    failures: int = row["consecutive_failures"]
    values: dict[str, Any] = {}
    for hook, finish in finished:
        now = finish.now
        if hook.attempt.outcome is Outcome.DELIVERED:
            values["last_success_at"] = now
            failing_since, failures = None, 0
            continue
        failing_since = failing_since or now
        failures += 1
        values["last_failure_at"] = now
        if state != "active":
            continue
        if hook.attempt.outcome is Outcome.GONE:
            reason = "the receiver answered 410 Gone"
        elif now - failing_since >= hook.health.disable_after:
            reason = f"only failures since {failing_since.isoformat()} ({failures} attempts)"
        else:
            continue
        hook.disable(conn, reason, failures, now)
        state = "disabled"
    conn.execute(
        _HEALTH,
        {
            "w_name": name,
            "w_failing_since": failing_since,
            "w_failures": failures,
            "w_success": values.get("last_success_at"),
            "w_failure": values.get("last_failure_at"),
        },
    )
