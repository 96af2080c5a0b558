"""The database on a real SQLite file: pragmas, migrations, refusals."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, StatementError

from engine.app import metadata as all_tables
from engine.app import migration_folders
from engine.config import DatabaseConfig
from engine.core.migrate import _alembic_config, head_revision, migrate, migration_status
from engine.core.schema import events, job_attempts, jobs, rule_sets
from engine.core.storage import Database, table_names
from engine.errors import SchemaTooNewError, StorageError


def sqlite_database(path: Path, **config: Any) -> Database:
    return Database(make_url(f"sqlite+aiosqlite:///{path}"), DatabaseConfig(**config))


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = sqlite_database(tmp_path / "var" / "ownly.db", synchronous="NORMAL", busy_timeout=2.5)
    await db.open()
    yield db
    await db.close()


async def test_every_connection_gets_the_pragmas(database: Database) -> None:
    async with database.connect() as first, database.connect() as second:
        for conn in (first, second):
            values = [
                (await conn.execute(text(f"PRAGMA {name}"))).scalar()
                for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
            ]
            assert values == ["wal", 1, 2500, 1]  # synchronous NORMAL is 1


async def test_synchronous_defaults_to_full(tmp_path: Path) -> None:
    db = sqlite_database(tmp_path / "full.db")
    await db.open()
    try:
        async with db.connect() as conn:
            assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == 2
    finally:
        await db.close()


async def test_migrate_creates_the_core_tables_once(database: Database) -> None:
    status = await migration_status(database)
    assert status.is_new
    before, after = await migrate(database)
    assert (before.current, after.current) == ((), head_revision())
    async with database.connect() as conn:
        assert {"events", "jobs", "rule_sets", "alembic_version"} <= await table_names(conn)
    again = await migrate(database)
    assert again[0] == again[1] == after


async def test_migrations_match_the_schema_module(database: Database) -> None:
    await migrate(database, migration_folders())
    async with database.connect() as conn:
        diff = await conn.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), all_tables())
        )
    assert diff == []


async def test_migrated_indexes_are_the_schema_modules_to_the_letter(
    database: Database, tmp_path: Path
) -> None:
    """Partial indexes too: their WHERE is not among what `compare_metadata` compares."""
    await migrate(database, migration_folders())
    query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
    async with database.connect() as conn:
        migrated = {name: sql for name, sql in await conn.execute(text(query))}
    fresh = sqlite_database(tmp_path / "fresh.db")
    await fresh.open()
    try:
        async with fresh.begin() as conn:
            await conn.run_sync(all_tables().create_all)
            created = {name: sql for name, sql in await conn.execute(text(query))}
    finally:
        await fresh.close()
    assert "WHERE ordered = 1" in created["ix_jobs_ordered_unfinished"]
    assert migrated == created


async def test_going_back_before_0003_makes_waiting_jobs_pending(database: Database) -> None:
    """Code from before 0003 leases no ``waiting`` job: going back must not strand any."""
    await migrate(database)
    at = datetime(2026, 11, 26, 13, 0, tzinfo=UTC)
    row = {"kind": "webhook", "payload": {}, "due_at": at, "attempts": 0, "max_attempts": 3}
    row |= {"created_at": at, "updated_at": at, "group_key": "webhook:a", "ordered": True}
    async with database.begin() as conn:
        await conn.execute(
            insert(jobs), [row | {"idempotency_key": k, "state": s} for k, s in KEYED_STATES]
        )
    async with database.begin() as conn:
        await conn.run_sync(_alembic("downgrade", "0002_webhooks"))
        states = dict((await conn.execute(select(jobs.c.idempotency_key, jobs.c.state))).all())
        indexes = await conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'index'"))
        names = set(indexes.scalars())
    assert states == {"a": "pending", "b": "pending", "c": "succeeded"}
    assert "ix_jobs_group_key_id" in names and "ix_jobs_ordered_unfinished" not in names
    before, after = await migrate(database)
    assert (before.current, after.current) == (("0002_webhooks",), head_revision())


KEYED_STATES = [("a", "pending"), ("b", "waiting"), ("c", "succeeded")]


def _alembic(action: str, revision: str) -> Any:
    """Run an Alembic command on the connection ``run_sync`` hands over."""
    config = _alembic_config()

    def run(sync: Any) -> None:
        config.attributes["connection"] = sync
        getattr(command, action)(config, revision)

    return run


async def test_0004_moves_every_webhook_attempt_into_the_one_attempt_log(
    database: Database,
) -> None:
    """Each attempt keeps what it had: the common columns, and the rest as its detail."""
    async with database.begin() as conn:
        await conn.run_sync(_alembic("upgrade", "0003_group_states"))
    at = datetime(2026, 11, 26, 13, 0, tzinfo=UTC)
    job = {"kind": "webhook", "payload": {}, "due_at": at, "attempts": 2, "max_attempts": 3}
    job |= {"created_at": at, "updated_at": at, "state": "failed", "idempotency_key": "k"}
    attempt = {
        "job_id": 1,
        "started_at": "2026-11-26 13:00:00.000000",
        "duration": 0.25,
        "response_body_truncated": 0,
    }
    async with database.begin() as conn:
        await conn.execute(insert(jobs), [job])
        await conn.execute(
            text(
                "INSERT INTO webhook_attempts (job_id, attempt, outcome, started_at, duration, "
                "status, response_headers, response_body, response_body_truncated, retry_after, "
                "error_class, error_message) VALUES (:job_id, :attempt, :outcome, :started_at, "
                ":duration, :status, :headers, :body, :response_body_truncated, :retry_after, "
                ":error_class, :error_message)"
            ),
            [
                attempt
                | {"attempt": 1, "outcome": "failed", "status": 503, "headers": '[["a", "b"]]'}
                | {"body": "busy", "retry_after": 30.0, "error_class": None}
                | {"error_message": None},
                attempt
                | {"attempt": 2, "outcome": "timeout", "status": None, "headers": "[]"}
                | {"body": "", "retry_after": None, "error_class": "TimeoutError"}
                | {"error_message": "no answer in 15 s"},
            ],
        )
    before, after = await migrate(database)
    assert before.current == ("0003_group_states",) and after.is_current
    async with database.connect() as conn:
        rows = (await conn.execute(select(job_attempts).order_by(job_attempts.c.id))).all()
        names = set(await table_names(conn))
    assert "webhook_attempts" not in names
    assert [(r.job_id, r.attempt, r.outcome, r.duration) for r in rows] == [
        (1, 1, "failed", 0.25),
        (1, 2, "timeout", 0.25),
    ]
    assert [(r.error_class, r.error_message) for r in rows] == [
        (None, None),
        ("TimeoutError", "no answer in 15 s"),
    ]
    assert rows[0].detail == {
        "status": 503,
        "response_headers": [["a", "b"]],
        "response_body": "busy",
        "response_body_truncated": False,
        "retry_after": 30.0,
    }
    assert rows[1].started_at == datetime(2026, 11, 26, 13, 0, tzinfo=UTC)
    # And back: the webhook attempts return as they were.
    async with database.begin() as conn:
        await conn.run_sync(_alembic("downgrade", "0003_group_states"))
        back = (
            await conn.execute(
                text("SELECT attempt, status, response_body FROM webhook_attempts ORDER BY id")
            )
        ).all()
    assert [tuple(row) for row in back] == [(1, 503, "busy"), (2, None, "")]


async def test_timestamps_come_back_aware_in_utc(database: Database) -> None:
    await migrate(database)
    at = datetime(2026, 11, 26, 13, 0, tzinfo=timezone(timedelta(hours=2)))
    async with database.begin() as conn:
        await conn.execute(insert(rule_sets).values(version="v1", applied_at=at, files=[], ir={}))
        await conn.execute(
            insert(events).values(
                id="evt_1", type="deal.created", occurred_at=at, received_at=at, data={"a": 1}
            )
        )
    async with database.connect() as conn:
        row = (await conn.execute(select(events.c.occurred_at, events.c.data))).one()
    assert row.occurred_at == at
    assert row.occurred_at.tzinfo is UTC
    assert row.data == {"a": 1}


async def test_naive_timestamps_are_refused(database: Database) -> None:
    await migrate(database)
    with pytest.raises(StatementError, match="naive datetime"):
        async with database.begin() as conn:
            await conn.execute(
                insert(rule_sets).values(
                    version="v", applied_at=datetime(2026, 1, 1), files=[], ir={}
                )
            )


async def test_foreign_keys_are_enforced(database: Database) -> None:
    await migrate(database)
    now = datetime.now(UTC)
    with pytest.raises(IntegrityError, match="FOREIGN KEY"):
        async with database.begin() as conn:
            await conn.execute(
                insert(events).values(
                    id="e", type="t", occurred_at=now, received_at=now, data={}, rule_set="nope"
                )
            )


async def test_a_failed_transaction_writes_nothing(database: Database) -> None:
    await migrate(database)
    now = datetime.now(UTC)
    row = {"type": "t", "occurred_at": now, "received_at": now, "data": {}}
    with pytest.raises(IntegrityError, match="UNIQUE"):
        async with database.begin() as conn:
            await conn.execute(insert(events).values(id="same", **row))
            await conn.execute(insert(events).values(id="same", **row))
    async with database.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM events"))).scalar() == 0


async def test_a_newer_database_is_refused(database: Database) -> None:
    await migrate(database)
    async with database.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '0099_future'"))
    with pytest.raises(SchemaTooNewError, match=r"'0099_future'.*upgrade Ownly"):
        await migration_status(database)
    with pytest.raises(SchemaTooNewError):
        await migrate(database)


async def test_a_read_only_database_is_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "ro.db"
    sqlite3.connect(path).close()
    db = Database(make_url(f"sqlite+aiosqlite:///file:{path}?mode=ro&uri=true"), DatabaseConfig())
    with pytest.raises(StorageError, match="read-only"):
        await db.open()
    await db.close()


async def test_an_unreachable_directory_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    db = sqlite_database(tmp_path / "file" / "ownly.db")
    with pytest.raises(StorageError, match="cannot create the database directory"):
        await db.open()


async def test_using_a_closed_database_is_a_storage_error(tmp_path: Path) -> None:
    db = sqlite_database(tmp_path / "x.db")
    with pytest.raises(StorageError, match="not open"):
        await db.ping()
