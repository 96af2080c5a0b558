"""What happens to an email after it is sent: its status, its events, the suppression list.

Everything heard about an email (a provider's report, an open or a click on
the engine's own links, an unsubscribe) is a ``Change``. ``record_changes``
folds changes into the email log inside the writer's transaction: one row of
``email_events`` each, the counts and times, the status, a suppression for a
hard bounce, a complaint or an unsubscribe, and a catalog event through the
bus (``email.delivered``, ``email.opened``, ...), all in that one transaction.

Statuses only move forward (``advances``): a late ``delivered`` after an
``opened`` records its time and keeps ``opened``. A change carrying a receipt
(a provider's event id) already recorded is a duplicate and changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Self

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Row

from engine.core.writer import BatchWrite
from engine.email.tables import email_events, email_receipts, email_suppressions, emails
from engine.events.bus import Bus, StoredEvent

__all__ = [
    "STATUSES",
    "Change",
    "RecordChanges",
    "Suppress",
    "advances",
    "email_event",
    "find_suppressions",
    "record_changes",
    "suppress",
]

STATUSES = (
    "queued",
    "sent",
    "delivered",
    "opened",
    "clicked",
    "bounced",
    "complained",
    "unsubscribed",
    "dropped",
    "suppressed",
    "failed",
)

# How far along each status is; a change moves an email only further along.
_RANK = {
    "queued": 0,
    "failed": 1,
    "suppressed": 1,
    "sent": 2,
    "delivered": 3,
    "bounced": 3,
    "dropped": 3,
    "opened": 4,
    "clicked": 5,
    "unsubscribed": 6,
    "complained": 7,
}

# The catalog event each change emits; a deferral is recorded and emits nothing.
_EVENTS = {
    "sent": "email.sent",
    "delivered": "email.delivered",
    "opened": "email.opened",
    "clicked": "email.clicked",
    "bounced": "email.bounced",
    "complained": "email.complained",
    "unsubscribed": "email.unsubscribed",
    "dropped": "email.failed",
    "failed": "email.failed",
}

# The column that keeps when each change last happened (and first, for opens and clicks).
_TIMES = {
    "sent": "sent_at",
    "delivered": "delivered_at",
    "bounced": "bounced_at",
    "complained": "complained_at",
    "unsubscribed": "unsubscribed_at",
    "dropped": "failed_at",
    "failed": "failed_at",
}

ChangeType = Literal[
    "delivered", "opened", "clicked", "bounced", "complained", "unsubscribed", "dropped", "deferred"
]


def advances(current: str, new: str) -> bool:
    """Whether an email in ``current`` moves to ``new`` (never backwards)."""
    return _RANK.get(new, -1) > _RANK.get(current, 0)


@dataclass(frozen=True)
class Change:
    """One thing heard about an email."""

    email_id: str
    type: ChangeType
    source: str  # sendgrid mailgun tracking
    occurred_at: datetime
    receipt: str | None = None  # the provider's id of the report, which deduplicates it
    url: str | None = None  # the link clicked
    bounce_type: Literal["hard", "soft"] | None = None
    reason: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


def email_event(
    row: Mapping[str, Any], change: str, at: datetime, seq: int | None = None, **extra: Any
) -> StoredEvent:
    """The catalog event for ``change`` of the email ``row``, its id derived from the change
    (and ``seq``, the how-manyth open or click it is) so that it is never emitted twice."""
    data: dict[str, Any] = {"email_id": row["id"], "recipient": row["recipient"]}
    if row["template"] is not None:
        data["template"] = row["template"]
    if row["provider"] is not None and change not in ("opened", "clicked", "unsubscribed"):
        data["provider"] = row["provider"]
    data.update({k: v for k, v in extra.items() if v is not None})
    data[f"{'failed' if change == 'dropped' else change}_at"] = at.isoformat()
    event_id = f"{row['id']}.{change}" + (f".{seq}" if seq is not None else "")
    return StoredEvent(
        id=event_id,
        type=_EVENTS[change],
        data=data,
        occurred_at=at,
        received_at=at,
        source="ownly",
        subject=row["recipient"],
    )


def record_changes(
    conn: Connection, bus: Bus, changes: Sequence[Change], now: datetime
) -> list[bool]:
    """Fold ``changes`` into the email log on ``conn``; answers, per change, whether it was
    recorded (False: a duplicate receipt, or an email the log does not have)."""
    recorded = []
    events: list[StoredEvent] = []
    for change in changes:
        if change.receipt is not None and not _first_receipt(
            conn, change.source, change.receipt, now
        ):
            recorded.append(False)
            continue
        row = conn.execute(select(emails).where(emails.c.id == change.email_id)).first()
        if row is None:
            recorded.append(False)
            continue
        values, event = _fold(dict(row._mapping), change)
        values["updated_at"] = now
        conn.execute(update(emails).where(emails.c.id == change.email_id).values(values))
        conn.execute(insert(email_events).values(_event_row(change, now)))
        if change.type in ("complained", "unsubscribed") or change.bounce_type == "hard":
            category = row.category or "" if change.type == "unsubscribed" else ""
            reason = "bounced" if change.type == "bounced" else change.type
            suppress(conn, row.recipient, category, reason, change.reason, row.id, now)
        if event is not None:
            events.append(event)
        recorded.append(True)
    if events:
        bus.emit(conn, events)
    return recorded


def _first_receipt(conn: Connection, provider: str, receipt: str, now: datetime) -> bool:
    """Whether ``receipt`` of ``provider`` is new; it is recorded as seen from now on."""
    seen = conn.execute(
        select(email_receipts.c.receipt).where(
            email_receipts.c.provider == provider, email_receipts.c.receipt == receipt
        )
    ).first()
    if seen is not None:
        return False
    row = {"provider": provider, "receipt": receipt, "received_at": now}
    conn.execute(insert(email_receipts).values(row))
    return True


def _fold(row: Mapping[str, Any], change: Change) -> tuple[dict[str, Any], StoredEvent | None]:
    """The email's new columns after ``change``, and the catalog event it emits."""
    at = change.occurred_at
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    seq: int | None = None
    if change.type == "opened":
        count = row["open_count"] + 1
        values["open_count"] = count
        values["last_opened_at"] = at
        if row["first_opened_at"] is None or at < row["first_opened_at"]:
            values["first_opened_at"] = at
        seq = count
    elif change.type == "clicked":
        count = row["click_count"] + 1
        values["click_count"] = count
        values["last_clicked_at"] = at
        if row["first_clicked_at"] is None or at < row["first_clicked_at"]:
            values["first_clicked_at"] = at
        extra["url"], seq = change.url, count
    elif change.type in _TIMES:
        values[_TIMES[change.type]] = at
    if change.type == "bounced":
        values["bounce"] = {"type": change.bounce_type or "hard", "reason": change.reason}
        extra.update(bounce_type=change.bounce_type or "hard", reason=change.reason)
    elif change.type == "dropped":
        extra["error"] = f"dropped by {change.source}: {change.reason or 'no reason given'}"
    if advances(row["status"], change.type):
        values["status"] = change.type
    if change.type not in _EVENTS:
        return values, None
    return values, email_event(row, change.type, at, seq, **extra)


def _event_row(change: Change, now: datetime) -> dict[str, Any]:
    detail = dict(change.detail)
    for name in ("url", "bounce_type", "reason", "receipt"):
        value = getattr(change, name)
        if value is not None:
            detail[name] = value
    return {
        "email_id": change.email_id,
        "type": change.type,
        "source": change.source,
        "occurred_at": change.occurred_at,
        "received_at": now,
        "detail": detail,
    }


@dataclass(frozen=True)
class RecordChanges(BatchWrite[list[bool] | None]):
    """``record_changes`` as a write of its own (a provider's webhook, a tracking link).

    With ``once`` (a provider and a receipt, such as a Mailgun webhook's token),
    only when that receipt is new: else nothing is written and the result is None.
    """

    bus: Bus
    changes: Sequence[Change]
    now: datetime
    once: tuple[str, str] | None = None

    @classmethod
    def apply_all(cls, conn: Connection, writes: Sequence[Self]) -> list[list[bool] | None]:
        results: list[list[bool] | None] = []
        for w in writes:
            if w.once is not None and not _first_receipt(conn, *w.once, w.now):
                results.append(None)
                continue
            results.append(record_changes(conn, w.bus, w.changes, w.now))
        return results


def suppress(
    conn: Connection,
    address: str,
    category: str,
    reason: str,
    detail: str | None,
    email_id: str | None,
    now: datetime,
) -> bool:
    """Add ``address`` to the suppression list for ``category`` ("" for every one); False
    when it is there already."""
    address = address.lower()
    found = conn.execute(
        select(email_suppressions.c.address).where(
            email_suppressions.c.address == address, email_suppressions.c.category == category
        )
    ).first()
    if found is not None:
        return False
    row = {
        "address": address,
        "category": category,
        "reason": reason,
        "detail": (detail or "")[:500] or None,
        "email_id": email_id,
        "created_at": now,
    }
    conn.execute(insert(email_suppressions).values(row))
    return True


def find_suppressions(
    conn: Connection, sends: Sequence[tuple[str, str | None]]
) -> list[Row[Any] | None]:
    """Per ``(address, category)``, the suppression that stops a send to it, if there is one
    (the address's suppression for every category first), all read in one query."""
    addresses = sorted({address.lower() for address, _ in sends})
    found = {
        (row.address, row.category): row
        for row in conn.execute(
            select(email_suppressions).where(email_suppressions.c.address.in_(addresses))
        )
    }
    return [
        found.get((address.lower(), "")) or found.get((address.lower(), category or ""))
        for address, category in sends
    ]


@dataclass(frozen=True)
class Suppress(BatchWrite[bool]):
    """Add or remove one entry of the suppression list (the API's)."""

    address: str
    category: str
    now: datetime
    remove: bool = False
    reason: str = "manual"
    detail: str | None = None

    @classmethod
    def apply_all(cls, conn: Connection, writes: Sequence[Self]) -> list[bool]:
        results = []
        for w in writes:
            if w.remove:
                deleted = conn.execute(
                    email_suppressions.delete().where(
                        email_suppressions.c.address == w.address.lower(),
                        email_suppressions.c.category == w.category,
                    )
                )
                results.append(deleted.rowcount > 0)
            else:
                results.append(
                    suppress(conn, w.address, w.category, w.reason, w.detail, None, w.now)
                )
        return results
