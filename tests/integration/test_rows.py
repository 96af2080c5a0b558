"""The writer's fast inserts store exactly what SQLAlchemy's own inserts store."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Table, create_engine, insert, select, text

from engine.core.rows import _plan, insert_rows
from engine.core.schema import events, jobs, metadata, rule_sets

AT = datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))


def _event(id_: str) -> dict[str, Any]:
    return {
        "id": id_,
        "type": "investment.created",
        "source": None,
        "subject": "inv_1",
        "occurred_at": AT,
        "received_at": datetime(1, 1, 1, tzinfo=UTC),
        "data": {"amount": "25.00", "name": "Zoë", "n": 2**70, "ok": True, "none": None},
        "rule_set": "v1",
    }


def _job(key: str) -> dict[str, Any]:
    return {
        "kind": "webhook",
        "payload": {"a": [1, 2.5, "x"]},
        "state": "pending",
        "due_at": AT,
        "max_attempts": 3,
        "idempotency_key": key,
        "ordered": True,
        "created_at": AT,
        "updated_at": AT,
    }  # no "attempts": the column's Python default applies


def test_rows_read_back_and_stored_the_same_as_through_sqlalchemy(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'rows.db'}")
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(rule_sets).values(version="v1", applied_at=AT, files=[], ir={}),
        )
        conn.execute(insert(events), [_event("a")])
        insert_rows(conn, events, [_event("b"), _event("c")])
        conn.execute(insert(jobs), [_job("a")])
        insert_rows(conn, jobs, [_job("b")])
    with engine.connect() as conn:
        read = {row.id: row._asdict() for row in conn.execute(select(events))}
        raw = {
            row[0]: row[1:]
            for row in conn.execute(text("SELECT id, occurred_at, received_at FROM events"))
        }
        read_jobs = [row._asdict() for row in conn.execute(select(jobs).order_by(jobs.c.id))]
    for fast in ("b", "c"):
        assert {k: v for k, v in read[fast].items() if k not in ("id", "seq")} == {
            k: v for k, v in read["a"].items() if k not in ("id", "seq")
        }
        assert raw[fast] == raw["a"]
    assert read["b"]["occurred_at"] == AT and read["b"]["data"]["n"] == 2**70
    assert read_jobs[1]["attempts"] == 0 and read_jobs[1]["ordered"] is True
    assert {k: v for k, v in read_jobs[1].items() if k not in ("id", "idempotency_key")} == {
        k: v for k, v in read_jobs[0].items() if k not in ("id", "idempotency_key")
    }
    engine.dispose()


def test_a_naive_time_is_refused(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'rows.db'}")
    metadata.create_all(engine)
    with engine.begin() as conn, pytest.raises(ValueError, match="naive datetime"):
        insert_rows(conn, jobs, [{**_job("a"), "due_at": datetime(2026, 1, 1)}])
    engine.dispose()


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"ordered": "false"}, TypeError),  # SQLAlchemy's Boolean refuses it too
        ({"payload": {"at": AT}}, TypeError),  # JSON cannot hold a time (nor can SQLAlchemy)
        ({"no_such_column": 1}, ValueError),
    ],
)
def test_what_sqlalchemy_refuses_is_refused(
    tmp_path: Path, change: dict[str, Any], error: type[Exception]
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'rows.db'}")
    metadata.create_all(engine)
    with engine.begin() as conn, pytest.raises(error):
        insert_rows(conn, jobs, [{**_job("a"), **change}])
    engine.dispose()


def test_rows_with_other_keys_are_refused(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'rows.db'}")
    metadata.create_all(engine)
    second = {k: v for k, v in _job("b").items() if k != "ordered"}
    with engine.begin() as conn, pytest.raises(ValueError, match="same keys"):
        insert_rows(conn, jobs, [_job("a"), second])
    engine.dispose()


def test_times_in_other_zones_are_converted_each_on_its_own(tmp_path: Path) -> None:
    # Two wall times an hour apart that compare equal (fold) must not share a text.
    new_york = zoneinfo.ZoneInfo("America/New_York")
    first = datetime(2026, 11, 1, 1, 30, tzinfo=new_york)
    second = first.replace(fold=1)
    engine = create_engine(f"sqlite:///{tmp_path / 'rows.db'}")
    metadata.create_all(engine)
    with engine.begin() as conn:
        insert_rows(conn, jobs, [{**_job("a"), "due_at": first}, {**_job("b"), "due_at": second}])
        stored = [row[0] for row in conn.execute(text("SELECT due_at FROM jobs ORDER BY id"))]
    assert stored == ["2026-11-01 05:30:00.000000", "2026-11-01 06:30:00.000000"]
    engine.dispose()


@pytest.mark.parametrize("table", metadata.sorted_tables, ids=lambda table: table.name)
def test_every_table_of_the_schema_can_take_the_fast_path(table: Table) -> None:
    # A column type insert_rows cannot convert would fail inside the writer at run time.
    _plan(table, frozenset(column.name for column in table.columns))
