"""Records of the table store: ``update_record`` in the engine's writes, on a real SQLite file.

Each write goes through the engine's writer as a workflow's checkpoint would,
and what it left is read back from the database: the record, its version,
the write kept under its key, and the ``record.updated`` event (with what it
planned under the rules).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from engine.records.store import (
    UPDATED_EVENT,
    InvalidRecord,
    KeyReused,
    RecordUpdate,
    UnknownRecord,
    event_id,
    load_record,
)
from engine.records.tables import record_writes, records
from engine.runtime import Engine
from tests.support.inprocess import clock_of, delivery_jobs, events_of_type, running_engine
from tests.support.records import DEAL_SECRET, records_toml, write_record

RECORD_FEED = """
webhook record_feed {
  url    = env("RECEIVER_URL")
  secret = env("RECEIVER_SECRET")
  events = [record.updated]
  when   event.data.record == "investor" and event.data.version > 1
}
"""
ENV = {"RECEIVER_URL": "http://127.0.0.1:9/feed", "DEAL_RECORDS_SECRET": DEAL_SECRET}


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    async with running_engine(tmp_path, RECORD_FEED, ENV, records_toml()) as running:
        yield running


async def _rows(engine: Engine, table: Any) -> list[Any]:
    async with engine.database.connect() as conn:
        return list((await conn.execute(select(table))).all())


def _result(update: RecordUpdate) -> dict[str, Any]:
    assert update.job is None
    assert update.result is not None
    return update.result


async def test_a_first_write_is_version_1_and_emits_record_updated(engine: Engine) -> None:
    fields = {"name": "Ada", "status": "pending", "address": {"city": "Oslo"}}
    update = await write_record(engine, "investor", "inv_1", fields, "run_1:step_1")

    now = engine.clock.now()
    assert _result(update) == {
        "id": "inv_1",
        "record": "investor",
        "version": 1,
        "fields": fields,
        "updated_at": now.isoformat(),
    }
    (row,) = await _rows(engine, records)
    assert (row.collection, row.id, row.fields, row.version) == ("investor", "inv_1", fields, 1)
    assert row.created_at == row.updated_at == now
    (event,) = await events_of_type(engine, UPDATED_EVENT)
    assert event.id == event_id("investor", "inv_1", 1)
    assert (event.source, event.subject) == ("ownly", "investor/inv_1")
    assert event.data == {"record": "investor", "id": "inv_1", "version": 1, "fields": fields}
    rules = engine.rules.rule_set()
    assert rules is not None and event.rule_set == rules.version
    assert await delivery_jobs(engine) == []  # the feed's `when` wants a later version


async def test_writes_merge_shallowly_keep_nulls_and_count_versions(engine: Engine) -> None:
    first = {"name": "Ada", "status": "pending", "address": {"city": "Oslo", "zip": "0150"}}
    await write_record(engine, "investor", "inv_1", first, "run_1:step_1")
    clock_of(engine).advance(60)
    changes = {"status": "active", "address": {"city": "Bergen"}, "name": None, "tier": 2}
    update = await write_record(engine, "investor", "inv_1", changes, "run_1:step_2")

    merged = {"name": None, "status": "active", "address": {"city": "Bergen"}, "tier": 2}
    result = _result(update)
    assert (result["version"], result["fields"]) == (2, merged)
    assert result["updated_at"] == engine.clock.now().isoformat()
    (row,) = await _rows(engine, records)
    assert (row.fields, row.version) == (merged, 2)
    assert row.created_at < row.updated_at
    second = (await events_of_type(engine, UPDATED_EVENT))[1]
    assert second.id == event_id("investor", "inv_1", 2)
    assert second.data["fields"] == changes  # what this write changed, not the whole record
    # The event was matched and planned in the write's own transaction.
    (delivery,) = await delivery_jobs(engine)
    assert (delivery.kind, delivery.event_id) == ("webhook", second.id)
    assert await load_record_of(engine, "investor", "inv_1") == result


async def load_record_of(engine: Engine, record: str, record_id: str) -> dict[str, Any] | None:
    async with engine.database.connect() as conn:
        return await load_record(conn, record, record_id)


async def test_records_of_other_names_or_ids_are_their_own(engine: Engine) -> None:
    await write_record(engine, "investor", "inv_1", {"a": 1}, "k1")
    await write_record(engine, "investor", "inv_2", {"b": 2}, "k2")
    await write_record(engine, "investor", "inv_1", {"c": 3}, "k3")
    got = {(row.id, row.version): row.fields for row in await _rows(engine, records)}
    assert got == {("inv_1", 2): {"a": 1, "c": 3}, ("inv_2", 1): {"b": 2}}
    assert await load_record_of(engine, "investor", "inv_3") is None


async def test_a_repeated_key_changes_nothing_and_answers_the_first_write(engine: Engine) -> None:
    first = await write_record(engine, "investor", "inv_1", {"status": "pending"}, "run_1:a")
    clock_of(engine).advance(5)
    again = await write_record(engine, "investor", "inv_1", {"status": "pending"}, "run_1:a")

    assert again == first
    (row,) = await _rows(engine, records)
    assert row.version == 1
    assert len(await events_of_type(engine, UPDATED_EVENT)) == 1
    assert len(await _rows(engine, record_writes)) == 1
    # After another write, the key still answers what it first did.
    await write_record(engine, "investor", "inv_1", {"status": "active"}, "run_1:b")
    assert (
        await write_record(engine, "investor", "inv_1", {"status": "pending"}, "run_1:a") == first
    )
    assert (await _rows(engine, records))[0].fields == {"status": "active"}


async def test_a_key_used_for_another_write_is_refused_and_writes_nothing(engine: Engine) -> None:
    await write_record(engine, "investor", "inv_1", {"status": "pending"}, "run_1:a")
    for record_id, fields in [("inv_1", {"status": "active"}), ("inv_2", {"status": "pending"})]:
        with pytest.raises(KeyReused, match="'run_1:a' was used for another write"):
            await write_record(engine, "investor", record_id, fields, "run_1:a")
    (row,) = await _rows(engine, records)
    assert (row.fields, row.version) == ({"status": "pending"}, 1)
    assert len(await events_of_type(engine, UPDATED_EVENT)) == 1


async def test_a_version_written_again_does_not_emit_its_event_twice(engine: Engine) -> None:
    """A write applied again (the record restored to before it, the write forgotten)
    derives the same event id, which the bus has stored already."""
    await write_record(engine, "investor", "inv_1", {"status": "pending"}, "run_1:a")
    async with engine.database.begin() as conn:
        await conn.execute(delete(records))
        await conn.execute(delete(record_writes))
    await write_record(engine, "investor", "inv_1", {"status": "pending"}, "run_1:a")

    (row,) = await _rows(engine, records)
    assert row.version == 1
    (event,) = await events_of_type(engine, UPDATED_EVENT)
    assert event.id == event_id("investor", "inv_1", 1)


async def test_an_unknown_record_is_refused_naming_the_known_ones(engine: Engine) -> None:
    with pytest.raises(UnknownRecord) as refused:
        await write_record(engine, "investors", "inv_1", {"a": 1}, "k")
    assert str(refused.value) == (
        "no record named 'investors' in [records] (the records: 'investor', 'deal')"
    )
    assert refused.value.record == "investors"
    assert await _rows(engine, records) == []


@pytest.mark.parametrize(
    ("record_id", "fields", "key", "message"),
    [
        ("", {"a": 1}, "k", "id is 1 to 200 characters"),
        ("x" * 201, {"a": 1}, "k", "id is 1 to 200 characters"),
        ("inv\n1", {"a": 1}, "k", "control character"),
        ("inv_1", {"a": 1}, "", "key is 1 to 300 characters"),
        ("inv_1", {"a": 1}, "k" * 301, "key is 1 to 300 characters"),
        ("inv_1", {"a": 1}, "run\r\n1", "key is 1 to 300 characters"),
        ("inv_1", ["a", 1], "k", "an object of names and values"),
        ("inv_1", {1: "a"}, "k", "an object of names and values"),
        ("inv_1", {"when": object()}, "k", "field 'when' is not a JSON value"),
        ("inv_1", {"at": datetime(2026, 1, 1, tzinfo=UTC)}, "k", "field 'at' is not a JSON"),
        ("inv_1", {"n": float("nan")}, "k", "field 'n' is not a JSON value"),
    ],
)
async def test_a_bad_write_is_refused_and_writes_nothing(
    engine: Engine, record_id: str, fields: Any, key: str, message: str
) -> None:
    with pytest.raises(InvalidRecord, match=message):
        await write_record(engine, "investor", record_id, fields, key)
    async with engine.database.connect() as conn:
        for table in (records, record_writes):
            assert await conn.scalar(select(func.count()).select_from(table)) == 0
    assert await events_of_type(engine, UPDATED_EVENT) == []


async def test_an_http_store_record_is_a_job_with_the_caller_and_key(engine: Engine) -> None:
    update = await write_record(
        engine,
        "deal",
        "deal 1/a",
        {"status": "funded"},
        "run_1:step_3",
        caller="workflow:run_1:step_3",
    )
    assert update.result is None
    job = update.job
    assert job is not None
    assert (job.kind, job.idempotency_key, job.caller, job.max_attempts) == (
        "record",
        "run_1:step_3",
        "workflow:run_1:step_3",
        8,
    )
    assert job.payload == {
        "record": "deal",
        "id": "deal 1/a",
        "fields": {"status": "funded"},
        "url": "https://platform.example/api/deals/deal%201%2Fa",
        "secret_env": "DEAL_RECORDS_SECRET",
        "timeout_seconds": 2.0,
        "message_id": job.payload["message_id"],
    }
    assert job.payload["message_id"].startswith("msg_")
    (stored,) = await delivery_jobs(engine)
    assert (stored.kind, stored.caller, stored.state) == ("record", job.caller, "pending")
    assert await _rows(engine, records) == []  # the platform keeps it
    assert await events_of_type(engine, UPDATED_EVENT) == []
