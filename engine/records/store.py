"""Writing a record: merged into the engine's table, or planned as a signed PATCH to the platform.

``update_record`` runs inside any write, on the writer's connection: a
workflow calls it in the transaction that records its step. Where the record
lives is ``[records.<name>]``'s ``store``:

- ``table``: the fields are merged into the stored ones, shallowly (a field
  given replaces the one stored; a field given as null is kept, as null, not
  removed), its ``version`` counts the writes (1 for the first), and
  ``record.updated`` is emitted through the bus in the same transaction, with
  the fields the write gave. The event's id is derived from the record, its id
  and the version, so a write applied again cannot emit it twice.
- ``http``: nothing is written here; the answer is the job that PATCHes the
  platform (kind ``record``, ``engine.records.handler``), for the caller to
  insert in its transaction.

The idempotency key names the write. A table write repeated with its key
changes nothing and answers what the first answered (with other fields, it is
refused: ``KeyReused``); an http write repeated with its key is the same job
again, which the queue keeps once (``jobs.idempotency_key``), and the PATCH
repeats its ``webhook-id``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from pydantic import JsonValue
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.ext.asyncio import AsyncConnection

from dsl import RuleSet
from engine.events.bus import Bus, StoredEvent
from engine.jobs.policy import default_policy
from engine.jobs.queue import NewJob
from engine.records import KIND
from engine.records.config import RecordConfig, RecordsConfig
from engine.records.tables import record_writes, records

__all__ = [
    "UPDATED_EVENT",
    "InvalidRecord",
    "KeyReused",
    "RecordError",
    "RecordUpdate",
    "UnknownRecord",
    "event_id",
    "load_record",
    "message_id",
    "platform_job",
    "record_view",
    "update_record",
]

UPDATED_EVENT = "record.updated"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class RecordError(Exception):
    """A record write that cannot be made; nothing was written.

    The tree::

        RecordError
        ├── UnknownRecord   the name is no [records.<name>] table
        ├── InvalidRecord   the id, the fields or the key are not valid
        └── KeyReused       the key names another write
    """


class UnknownRecord(RecordError):
    """The record is not named in ``[records]``."""

    def __init__(self, record: str, known: Mapping[str, RecordConfig]) -> None:
        names = ", ".join(f"'{name}'" for name in known) or "none"
        super().__init__(f"no record named '{record}' in [records] (the records: {names})")
        self.record = record


class InvalidRecord(RecordError):
    """The id, the fields or the key of a write are not valid."""


class KeyReused(RecordError):
    """The idempotency key was first used for another write."""


@dataclass(frozen=True)
class RecordUpdate:
    """What a write came to: the record as written (a table store), or the job that
    writes it (an http store), for the caller to insert."""

    result: dict[str, Any] | None
    job: NewJob | None


def event_id(record: str, record_id: str, version: int) -> str:
    """The id of the ``record.updated`` event of one version of a record."""
    digest = hashlib.sha256(f"{record}\0{record_id}\0{version}".encode()).hexdigest()[:32]
    return f"rec_{digest}"


def message_id(key: str) -> str:
    """The ``webhook-id`` of the PATCH of the write ``key``: the same on every retry."""
    return f"msg_{hashlib.sha256(key.encode()).hexdigest()[:26]}"


def update_record(
    conn: Connection,
    bus: Bus,
    config: RecordsConfig,
    record: str,
    record_id: str,
    fields: Mapping[str, JsonValue],
    *,
    key: str,
    caller: str | None,
    now: datetime,
    rules: RuleSet | None = None,
) -> RecordUpdate:
    """Write ``fields`` of the record ``record`` ``record_id`` on ``conn`` (see the module
    docstring); the event, if any, is planned under ``rules`` (the current rules when None).

    Raises:
        UnknownRecord: ``record`` is no ``[records.<name>]``.
        InvalidRecord: the id is empty, over 200 characters or holds a control
            character; ``fields`` is not an object of JSON values; ``key`` is
            empty, over 300 characters or holds a control character.
        KeyReused: ``key`` was used for another write.
    """
    store = config.records.get(record)
    if store is None:
        raise UnknownRecord(record, config.records)
    given = _checked(record_id, fields, key)
    if store.store == "http":
        job = platform_job(store, record, record_id, given, key=key, caller=caller, now=now)
        return RecordUpdate(None, job)
    return RecordUpdate(_write(conn, bus, record, record_id, given, key, now, rules), None)


def _checked(record_id: str, fields: Mapping[str, JsonValue], key: str) -> dict[str, Any]:
    if not isinstance(record_id, str) or not 1 <= len(record_id) <= 200:
        raise InvalidRecord("a record's id is 1 to 200 characters")
    if _CONTROL.search(record_id):
        raise InvalidRecord("a record's id must not hold a control character")
    if not isinstance(key, str) or not 1 <= len(key) <= 300 or _CONTROL.search(key):
        raise InvalidRecord("a write's idempotency key is 1 to 300 characters, none a control")
    if not isinstance(fields, Mapping) or not all(isinstance(name, str) for name in fields):
        raise InvalidRecord("a record's fields are an object of names and values")
    for name, value in fields.items():
        try:  # as the JSON column will write it
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            raise InvalidRecord(f"field '{name}' is not a JSON value") from None
    given: dict[str, Any] = json.loads(json.dumps(dict(fields)))  # as it will read back
    return given


def _request_hash(record: str, record_id: str, fields: dict[str, Any]) -> str:
    text = json.dumps([record, record_id, fields], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _write(
    conn: Connection,
    bus: Bus,
    record: str,
    record_id: str,
    fields: dict[str, Any],
    key: str,
    now: datetime,
    rules: RuleSet | None,
) -> dict[str, Any]:
    digest = _request_hash(record, record_id, fields)
    first = conn.execute(
        select(record_writes.c.request_hash, record_writes.c.result).where(
            record_writes.c.key == key
        )
    ).first()
    if first is not None:
        if first.request_hash != digest:
            raise KeyReused(f"the idempotency key '{key}' was used for another write")
        result: dict[str, Any] = first.result
        return result
    row = conn.execute(
        select(records.c.fields, records.c.version).where(
            records.c.collection == record, records.c.id == record_id
        )
    ).first()
    if row is None:
        version, merged = 1, fields
        conn.execute(
            insert(records).values(
                collection=record,
                id=record_id,
                fields=merged,
                version=version,
                created_at=now,
                updated_at=now,
            )
        )
    else:
        version, merged = row.version + 1, {**row.fields, **fields}
        conn.execute(
            update(records)
            .where(records.c.collection == record, records.c.id == record_id)
            .values(fields=merged, version=version, updated_at=now)
        )
    result = {
        "id": record_id,
        "record": record,
        "version": version,
        "fields": merged,
        "updated_at": now.isoformat(),
    }
    conn.execute(
        insert(record_writes).values(
            key=key,
            collection=record,
            id=record_id,
            request_hash=digest,
            result=result,
            written_at=now,
        )
    )
    event = StoredEvent(
        id=event_id(record, record_id, version),
        type=UPDATED_EVENT,
        data={"record": record, "id": record_id, "version": version, "fields": fields},
        occurred_at=now,
        received_at=now,
        source="ownly",
        subject=f"{record}/{record_id}",
    )
    bus.emit(conn, [event], rules)
    return result


def platform_job(
    store: RecordConfig,
    record: str,
    record_id: str,
    fields: Mapping[str, Any],
    *,
    key: str,
    caller: str | None,
    now: datetime,
) -> NewJob:
    """The job that writes ``fields`` of a record of the http store ``store``: a PATCH of
    ``{url}/{id}`` (``engine.records.handler``), retried on the Standard Webhooks schedule."""
    policy = default_policy()
    return NewJob(
        kind=KIND,
        payload={
            "record": record,
            "id": record_id,
            "fields": dict(fields),
            "url": f"{store.url}/{quote(record_id, safe='')}",
            "secret_env": store.secret_env,
            "timeout_seconds": store.timeout,
            "message_id": message_id(key),
        },
        idempotency_key=key,
        max_attempts=policy.attempts,
        due_at=now,
        caller=caller,
    )


def record_view(row: Row[Any]) -> dict[str, Any]:
    """A stored record as ``update_record`` answers it."""
    return {
        "id": row.id,
        "record": row.collection,
        "version": row.version,
        "fields": row.fields,
        "updated_at": row.updated_at.isoformat(),
    }


async def load_record(conn: AsyncConnection, record: str, record_id: str) -> dict[str, Any] | None:
    """The record of the table store as ``update_record`` answers it, or None."""
    row = (
        await conn.execute(
            select(records).where(records.c.collection == record, records.c.id == record_id)
        )
    ).first()
    return record_view(row) if row is not None else None
