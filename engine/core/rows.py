"""Many rows into one table, fast: the writer's hot inserts.

SQLAlchemy's ``conn.execute(insert(table), rows)`` runs every value of every row
through the column type's bind processor in Python: for an event and its job
that is about 100 µs of the writer's time, more than the commit itself. On
SQLite, ``insert_rows`` converts each value with one precomputed function per
column, into what those processors store (times as SQLAlchemy's
``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC, booleans as 0/1, JSON as text: the same
JSON, though orjson writes it without spaces and keeps non-ASCII characters
unescaped), and hands the tuples to the driver's ``executemany``. It refuses
what SQLAlchemy would refuse (a naive time, a value JSON cannot hold, a boolean
that is not one). Rows read back through SQLAlchemy are the same either way;
other databases take SQLAlchemy's path.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import JSON, Boolean, Float, Table, insert
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.schema import ScalarElementColumnDefault

from engine.core.schema import UTCDateTime

__all__ = ["insert_rows"]

Convert = Callable[[Any], Any]
_SQLITE = sqlite.dialect(paramstyle="qmark")
# Types orjson would write but the standard library (so SQLAlchemy) refuses go to it.
_ORJSON = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_ORJSON |= orjson.OPT_PASSTHROUGH_SUBCLASS


@dataclass(frozen=True)
class _Plan:
    statement: str
    keys: frozenset[str]
    columns: tuple[tuple[str, Any], ...]  # (name, Python default) in statement order
    times: tuple[int, ...]  # positions of the UTCDateTime columns
    others: tuple[tuple[int, Convert], ...]  # other positions that need converting


def insert_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (each with the same keys, all columns of ``table``) in one statement."""
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        conn.execute(insert(table), list(rows))
        return
    plan = _plan(table, frozenset(rows[0]))
    texts: dict[datetime, str | None] = {}  # a group's rows share their times (UTC ones)
    params = []
    for row in rows:
        if row.keys() != plan.keys:
            raise ValueError(f"rows for {table.name} must all have the same keys")
        values = [row.get(name, default) for name, default in plan.columns]
        for i in plan.times:
            value = values[i]
            if value is not None and value.tzinfo is UTC:
                text = texts.get(value)
                if text is None:
                    text = texts[value] = _utc_text(value)
                values[i] = text
            else:
                values[i] = _utc_text(value)
        for i, convert in plan.others:
            values[i] = convert(values[i])
        params.append(tuple(values))
    conn.exec_driver_sql(plan.statement, params)


@functools.cache
def _plan(table: Table, keys: frozenset[str]) -> _Plan:
    """The statement for rows with ``keys`` (and the columns that have a Python default),
    and how to convert each positional value."""
    unknown = keys - set(table.c.keys())
    if unknown:
        raise ValueError(f"{table.name} has no column {sorted(unknown)[0]!r}")
    defaults = {
        column.name: column.default.arg
        for column in table.columns
        if isinstance(column.default, ScalarElementColumnDefault)
    }
    names = [column.name for column in table.columns if column.name in keys | set(defaults)]
    compiled = insert(table).compile(dialect=_SQLITE, column_keys=names)
    assert compiled.positiontup is not None
    order = tuple(compiled.positiontup)
    times: list[int] = []
    others: list[tuple[int, Convert]] = []
    for i, name in enumerate(order):
        type_ = table.c[name].type
        if isinstance(type_, UTCDateTime):
            times.append(i)
        elif isinstance(type_, JSON):
            others.append((i, _json_text))
        elif isinstance(type_, Boolean):
            others.append((i, _bool))
        elif isinstance(type_, Float):
            others.append((i, _float))
        elif type_.bind_processor(_SQLITE) is not None:
            raise TypeError(f"{table.name}.{name}: insert_rows cannot convert {type_!r}")
    return _Plan(
        str(compiled),
        keys,
        tuple((name, defaults.get(name)) for name in order),
        tuple(times),
        tuple(others),
    )


def _bool(value: Any) -> int | None:
    if value is None:
        return None
    if value not in (True, False):  # as SQLAlchemy's Boolean: 0, 1 and the booleans
        raise TypeError(f"Not a boolean value: {value!r}")
    return int(value)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _utc_text(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime; pass an aware UTC time")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value, option=_ORJSON).decode()
    except TypeError:  # integers over 64 bits, and what the passthrough options hand on
        return json.dumps(value)
