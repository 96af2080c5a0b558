"""Group commit: concurrent writes share one transaction; each caller hears after its commit."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import pytest
from prometheus_client import CollectorRegistry, Histogram
from sqlalchemy import insert, select, text
from sqlalchemy.engine import Connection, make_url

from engine.config import DatabaseConfig
from engine.core.logs import make_logger
from engine.core.migrate import migrate
from engine.core.schema import rule_sets
from engine.core.storage import Database
from engine.core.writer import BatchWrite, Writer, after_commit
from engine.errors import StorageError
from tests.support.clock import utc


@dataclass(frozen=True)
class AddVersion(BatchWrite[str]):
    version: str

    @classmethod
    def apply_all(cls, conn: Connection, writes: Sequence[Self]) -> list[str]:
        conn.execute(
            insert(rule_sets),
            [{"version": w.version, "applied_at": utc(), "files": [], "ir": {}} for w in writes],
        )
        return [w.version for w in writes]


@dataclass(frozen=True)
class Explode(BatchWrite[None]):
    @classmethod
    def apply_all(cls, conn: Connection, writes: Sequence[Self]) -> list[None]:
        conn.execute(
            text(
                "INSERT INTO rule_sets (version, applied_at, files, ir) "
                "VALUES ('half-written', '2026-01-01 00:00:00', '[]', '{}')"
            )
        )
        raise RuntimeError("this kind always fails")


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(make_url(f"sqlite+aiosqlite:///{tmp_path}/w.db"), DatabaseConfig())
    await db.open()
    await migrate(db)
    yield db
    await db.close()


async def versions(database: Database) -> list[str]:
    async with database.connect() as conn:
        return list((await conn.scalars(select(rule_sets.c.version))).all())


async def test_concurrent_writes_share_commits(database: Database) -> None:
    groups = Histogram("groups", "writes per commit", registry=CollectorRegistry())
    writer = Writer(database, logger=make_logger(io.StringIO()), group_sizes=groups)
    writer.start()
    results = await asyncio.gather(*(writer.submit(AddVersion(f"v{i}")) for i in range(200)))
    await writer.stop()
    assert results == [f"v{i}" for i in range(200)]
    assert sorted(await versions(database)) == sorted(f"v{i}" for i in range(200))
    commits = groups.collect()[0].samples
    count = next(s.value for s in commits if s.name == "groups_count")
    total = next(s.value for s in commits if s.name == "groups_sum")
    assert total == 200
    assert count < 20, f"200 concurrent writes took {count} commits"


async def test_the_caller_hears_only_after_its_write_is_visible(database: Database) -> None:
    writer = Writer(database, logger=make_logger(io.StringIO()))
    writer.start()
    seen_committed = []

    async def write_then_look(version: str) -> None:
        await writer.submit(AddVersion(version))
        seen_committed.append(version in await versions(database))

    await asyncio.gather(*(write_then_look(f"v{i}") for i in range(50)))
    await writer.stop()
    assert seen_committed == [True] * 50


async def test_a_failing_kind_fails_only_its_callers(database: Database) -> None:
    writer = Writer(database, logger=make_logger(io.StringIO()))
    writer.start()
    outcomes = await asyncio.gather(
        writer.submit(AddVersion("kept")),
        writer.submit(Explode()),
        writer.submit(AddVersion("also-kept")),
        return_exceptions=True,
    )
    await writer.stop()
    assert outcomes[0] == "kept"
    assert isinstance(outcomes[1], StorageError)
    assert str(outcomes[1]) == "Explode could not be written: this kind always fails"
    assert isinstance(outcomes[1].__cause__, RuntimeError)
    assert outcomes[2] == "also-kept"
    assert sorted(await versions(database)) == ["also-kept", "kept"]


async def test_a_failing_kind_writes_nothing_of_that_kind(database: Database) -> None:
    writer = Writer(database, logger=make_logger(io.StringIO()))
    writer.start()
    await writer.submit(AddVersion("dup"))
    outcomes = await asyncio.gather(
        writer.submit(AddVersion("fresh")),
        writer.submit(AddVersion("dup")),  # same kind: the whole kind fails
        return_exceptions=True,
    )
    await writer.stop()
    assert all(isinstance(outcome, Exception) for outcome in outcomes)
    assert await versions(database) == ["dup"]


async def test_a_group_of_one_failing_kind_is_rolled_back_whole(database: Database) -> None:
    # Alone in its group the kind has no savepoint: its half-done write must still vanish.
    groups = Histogram("groups", "writes per commit", registry=CollectorRegistry())
    writer = Writer(database, logger=make_logger(io.StringIO()), group_sizes=groups)
    writer.start()
    with pytest.raises(StorageError, match="Explode could not be written"):
        await writer.submit(Explode())
    assert await writer.submit(AddVersion("after")) == "after"
    await writer.stop()
    assert await versions(database) == ["after"]
    commits = next(s.value for s in groups.collect()[0].samples if s.name == "groups_count")
    assert commits == 1, "the group rolled back is not counted as a commit"


@dataclass(frozen=True)
class Orphan(BatchWrite[None]):
    """A write SQLite accepts but refuses at COMMIT: a foreign key checked only then."""

    @classmethod
    def apply_all(cls, conn: Connection, writes: Sequence[Self]) -> list[None]:
        conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
        conn.execute(
            text(
                "INSERT INTO events (id, type, occurred_at, received_at, data, rule_set) "
                "VALUES ('e1', 'x.y', '2026-01-01 00:00:00', '2026-01-01 00:00:00', '{}', 'none')"
            )
        )
        return [None for _ in writes]


async def test_a_failed_commit_fails_its_group_and_the_next_group_commits(
    database: Database,
) -> None:
    writer = Writer(database, logger=make_logger(io.StringIO()))
    writer.start()
    with pytest.raises(StorageError, match="FOREIGN KEY") as failed:
        await writer.submit(Orphan())
    assert "could not be written" not in str(failed.value), "the commit failed, not the write"
    assert await writer.submit(AddVersion("after")) == "after"
    await writer.stop()
    assert await versions(database) == ["after"]


async def test_stop_commits_what_was_submitted(database: Database) -> None:
    writer = Writer(database, logger=make_logger(io.StringIO()))
    writer.start()
    pending = [asyncio.ensure_future(writer.submit(AddVersion(f"v{i}"))) for i in range(10)]
    await asyncio.sleep(0)
    await writer.stop()
    assert [await p for p in pending] == [f"v{i}" for i in range(10)]
    with pytest.raises(StorageError, match="not running"):
        await writer.submit(AddVersion("late"))


@dataclass(frozen=True)
class BrokenHook(BatchWrite[str]):
    version: str

    @classmethod
    def apply_all(cls, conn: Connection, writes: Sequence[Self]) -> list[str]:
        return AddVersion.apply_all(conn, [AddVersion(w.version) for w in writes])

    def committed(self, result: str) -> None:
        raise RuntimeError("a hook with a bug")


async def test_a_failing_committed_hook_does_not_stop_the_writer(database: Database) -> None:
    writer = Writer(database, logger=make_logger(io.StringIO()))
    writer.start()
    assert await writer.submit(BrokenHook("v1")) == "v1", "the write is committed and answered"
    assert await writer.submit(AddVersion("v2")) == "v2"
    await writer.stop()
    assert sorted(await versions(database)) == ["v1", "v2"]


async def test_a_failed_write_logs_no_values(database: Database) -> None:
    logs = io.StringIO()
    writer = Writer(database, logger=make_logger(logs))
    writer.start()
    await writer.submit(AddVersion("card_tok_SECRET"))
    with pytest.raises(StorageError) as caught:
        await writer.submit(AddVersion("card_tok_SECRET"))  # the same primary key again
    await writer.stop()
    assert "UNIQUE constraint failed" in str(caught.value)
    assert "card_tok_SECRET" not in logs.getvalue() + str(caught.value)


async def test_a_write_submitted_while_stopping_is_refused(database: Database) -> None:
    writer = Writer(database, logger=make_logger(io.StringIO()))
    writer.start()
    first = asyncio.ensure_future(writer.submit(AddVersion("v1")))
    await asyncio.sleep(0)
    stopping = asyncio.ensure_future(writer.stop())
    await asyncio.sleep(0)
    with pytest.raises(StorageError, match="not running"):
        await writer.submit(AddVersion("late"))
    await stopping
    assert await first == "v1"


@dataclass(frozen=True)
class Noted(BatchWrite[str]):
    """A write that leaves a callback for after its commit, then maybe fails."""

    version: str
    seen: list[str]
    fail: bool = False

    @classmethod
    def apply_all(cls, conn: Connection, writes: Sequence[Self]) -> list[str]:
        for write in writes:
            conn.execute(
                insert(rule_sets).values(version=write.version, applied_at=utc(), files=[], ir={})
            )
            after_commit(conn, write.note)
            if write.fail:
                raise RuntimeError("failed after leaving its callback")
        return [w.version for w in writes]

    def note(self) -> None:
        self.seen.append(self.version)


async def test_after_commit_callbacks_run_once_committed_and_never_for_a_rollback(
    database: Database,
) -> None:
    writer = Writer(database, logger=make_logger(io.StringIO()))
    writer.start()
    seen: list[str] = []
    outcomes = await asyncio.gather(
        writer.submit(Noted("kept", seen)),
        writer.submit(AddVersion("other")),
        return_exceptions=True,
    )
    assert outcomes == ["kept", "other"]
    assert seen == ["kept"]
    failed = await asyncio.gather(
        writer.submit(Noted("lost", seen, fail=True)), return_exceptions=True
    )
    mixed = await asyncio.gather(
        writer.submit(AddVersion("beside")),
        writer.submit(Noted("lost-too", seen, fail=True)),
        return_exceptions=True,
    )
    await writer.stop()
    assert isinstance(failed[0], StorageError) and isinstance(mixed[1], StorageError)
    assert seen == ["kept"]  # the rolled-back writes ran none of theirs
    assert sorted(await versions(database)) == ["beside", "kept", "other"]
