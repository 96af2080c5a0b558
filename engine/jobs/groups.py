"""Job groups: held together, and run one at a time in order when ``ordered``.

Jobs may belong to a group (``group_key``, e.g. one webhook's deliveries). A
held group's pending jobs become ``held`` (so leasing never walks past them)
and are not leased until the group is released, when they are pending again.
An ``ordered`` job is not leased while an earlier ordered job of its group is
unfinished, so a group's ordered jobs run one at a time, in id order: one
created behind an unfinished one is ``waiting``, and the first waiting job of
a group becomes pending when the last earlier one ends. So a lease never walks
the backlog behind a delivery that keeps failing, and a partial index of the
unfinished ordered jobs answers "is anything before it unfinished?" without
walking the group's history (``bench/groups.py``: 100,000 pending behind a
failing one made a lease take 175 ms, 100,000 delivered before them 33 s).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    literal_column,
    not_,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.engine import Connection

from engine.core.schema import UNFINISHED, UTCDateTime, job_holds, jobs

if TYPE_CHECKING:
    from engine.jobs.queue import NewJob

__all__ = [
    "earlier_unfinished",
    "hold_group",
    "must_wait_for",
    "place_in_groups",
    "promote_waiting",
    "release_group",
    "unfinished_ordered",
]

# Every held group: one row per paused or disabled destination, so few. Reading
# them all with a statement compiled once costs less than an ``IN`` list, which
# SQLAlchemy renders again for every list.
_HELD = select(job_holds.c.group_key)


def place_in_groups(conn: Connection, new: Sequence[NewJob]) -> None:
    """After inserting ``new`` jobs (pending): ``waiting`` when ordered behind an
    unfinished job of their group, ``held`` in a held group."""
    # Read only after writing: a read first would make this a read transaction
    # that another connection's commit can keep from ever writing (SQLite).
    groups = {job.group_key for job in new if job.group_key is not None}
    if not groups:
        return
    ordered = [job.idempotency_key for job in new if job.ordered and job.group_key is not None]
    for start in range(0, len(ordered), 500):
        # Behind an earlier job of the batch too: pending or waiting, it is unfinished.
        conn.execute(_WAIT, {"keys": ordered[start : start + 500]})
    held = groups.intersection(conn.scalars(_HELD))
    keys = [job.idempotency_key for job in new if job.group_key in held]
    for start in range(0, len(keys), 500):
        conn.execute(
            update(jobs)
            .where(jobs.c.idempotency_key.in_(keys[start : start + 500]), jobs.c.state == "pending")
            .values(state="held")
        )


def unfinished_ordered(table: Any) -> ColumnElement[bool]:
    """An unfinished ordered job: the terms of the index of those, as its WHERE has them.

    Literally: SQLite uses a partial index only for a query that repeats its
    WHERE terms, and ``state IN (?, ?, ?, ?)`` with bound values does not.
    """
    states: list[ColumnElement[Any]] = [literal_column(f"'{state}'") for state in UNFINISHED]
    return and_(table.c.ordered == true(), table.c.state.in_(states))


def must_wait_for(other: Any, job_id: Any) -> ColumnElement[bool]:
    """``other`` is an ordered job that the job ``job_id`` of its group must wait for:
    an unfinished one before it, or one running now (a failed job re-opened by an
    operator waits for a later one in flight: a group's ordered jobs run one at a time)."""
    return or_(
        and_(other.c.id < job_id, unfinished_ordered(other)),
        and_(other.c.ordered == true(), other.c.state == literal_column("'running'")),
    )


def earlier_unfinished() -> ColumnElement[bool]:
    """An unfinished ordered job of the same group before this one."""
    earlier = jobs.alias("earlier")
    return exists().where(
        earlier.c.group_key == jobs.c.group_key,
        earlier.c.id < jobs.c.id,
        unfinished_ordered(earlier),
    )


_WAIT = (
    update(jobs)
    .where(
        jobs.c.idempotency_key.in_(bindparam("keys", expanding=True)),
        jobs.c.state == "pending",
        earlier_unfinished(),
    )
    .values(state="waiting")
)
_WAITING = jobs.alias("waiting")
_FIRST_WAITING = (
    select(func.min(_WAITING.c.id))
    .where(
        _WAITING.c.group_key == bindparam("p_group"),
        unfinished_ordered(_WAITING),
        _WAITING.c.state == "waiting",
    )
    .scalar_subquery()
)
# The first waiting job of a group runs when no job before it may still run.
_PROMOTE = (
    update(jobs)
    .where(jobs.c.id == _FIRST_WAITING, not_(earlier_unfinished()))
    .values(
        state=case(
            (exists().where(job_holds.c.group_key == jobs.c.group_key), "held"),
            else_="pending",
        ),
        updated_at=bindparam("p_now", type_=UTCDateTime()),
    )
)


def promote_waiting(conn: Connection, group_keys: Sequence[str], now: datetime) -> None:
    """Let the first waiting job of each group run, where nothing before it may still run
    (called whenever an ordered job stops running, whatever its outcome)."""
    for key in group_keys:
        conn.execute(_PROMOTE, {"p_group": key, "p_now": now})


def hold_group(conn: Connection, group_key: str, reason: str, now: datetime) -> None:
    """Hold the group's pending jobs (and those to come) until ``release_group``.

    A job that becomes pending while its group is held (a retry, an expired
    lease) stays ``pending`` but is not leased either.
    """
    held = conn.scalar(select(job_holds.c.group_key).where(job_holds.c.group_key == group_key))
    if held is None:
        conn.execute(insert(job_holds).values(group_key=group_key, reason=reason, held_at=now))
        conn.execute(
            update(jobs)
            .where(jobs.c.group_key == group_key, jobs.c.state == "pending")
            .values(state="held")
        )
    else:
        conn.execute(
            update(job_holds).where(job_holds.c.group_key == group_key).values(reason=reason)
        )


def release_group(conn: Connection, group_key: str) -> None:
    """Let the group's jobs be leased again."""
    conn.execute(delete(job_holds).where(job_holds.c.group_key == group_key))
    conn.execute(
        update(jobs)
        .where(jobs.c.group_key == group_key, jobs.c.state == "held")
        .values(state="pending")
    )
