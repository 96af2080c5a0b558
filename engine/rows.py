"""Many rows into one table, fast: the writer's hot inserts.

SQLAlchemy's ``conn.execute(insert(table), rows)`` runs every value of every row
through the column type's bind processor in Python: for an event and its job
that is about 100 µs of the writer's time, more than the commit itself. On
SQLite, ``insert_rows`` converts each value with one precomputed function per
column, into exactly what those processors store (times as SQLAlchemy's
``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC, JSON as text, booleans as 0/1), and hands
the tuples to the driver's ``executemany``. Rows read back through SQLAlchemy
are the same either way; other databases take SQLAlchemy's path.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import JSON, Boolean, Table, insert
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.schema import ScalarElementColumnDefault

from engine.schema import UTCDateTime

__all__ = ["insert_rows"]

Convert = Callable[[Any], Any]
_SQLITE = sqlite.dialect(paramstyle="qmark")


def insert_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (each with the same keys) into ``table`` in one statement."""
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        conn.execute(insert(table), list(rows))
        return
    statement, plan = _plan(table, frozenset(rows[0]))
    pairs = [(name, default) for name, default, _ in plan]
    converts = [(i, convert) for i, (_, _, convert) in enumerate(plan) if convert is not _same]
    texts: dict[datetime, str | None] = {}  # a group's rows share their times
    params = []
    for row in rows:
        values = [row.get(name, default) for name, default in pairs]
        for i, convert in converts:
            value = values[i]
            if convert is _utc_text:
                text = texts.get(value)
                if text is None:
                    text = texts[value] = _utc_text(value)
                values[i] = text
            else:
                values[i] = convert(value)
        params.append(tuple(values))
    conn.exec_driver_sql(statement, params)


@functools.cache
def _plan(table: Table, keys: frozenset[str]) -> tuple[str, tuple[tuple[str, Any, Convert], ...]]:
    """The statement for rows with ``keys`` (and the columns that have a Python default),
    and how to convert each positional value."""
    defaults = {
        column.name: column.default.arg
        for column in table.columns
        if isinstance(column.default, ScalarElementColumnDefault)
    }
    names = [column.name for column in table.columns if column.name in keys | set(defaults)]
    compiled = insert(table).compile(dialect=_SQLITE, column_keys=names)
    assert compiled.positiontup is not None
    plan = tuple(
        (name, defaults.get(name), _converter(table.c[name].type)) for name in compiled.positiontup
    )
    return str(compiled), plan


def _converter(type_: Any) -> Convert:
    if isinstance(type_, UTCDateTime):
        return _utc_text
    if isinstance(type_, JSON):
        return _json_text
    if isinstance(type_, Boolean):
        return _bool
    return _same


def _same(value: Any) -> Any:
    return value


def _bool(value: Any) -> int | None:
    return None if value is None else int(bool(value))


def _utc_text(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime; pass an aware UTC time")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # what orjson refuses (integers over 64 bits), the standard library takes
        return json.dumps(value)
