"""Record writes for tests: ``update_record`` in a write of its own, its job inserted."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self

from sqlalchemy.engine import Connection

from engine.core.writer import BatchWrite
from engine.errors import StorageError
from engine.jobs.queue import insert_jobs
from engine.records.store import RecordError, RecordUpdate, update_record
from engine.runtime import Engine

DEAL_SECRET = "whsec_" + "ZGVhbC1yZWNvcmRzLXNlY3JldC1vZi0zMi1ieXRlcyE="  # 32 bytes


def records_toml(platform_url: str = "https://platform.example/api/deals") -> str:
    """A table-store record ``investor`` and an http-store record ``deal``."""
    return (
        "\n[records.investor]\n"
        f'[records.deal]\nstore = "http"\nurl = "{platform_url}"\n'
        'secret_env = "DEAL_RECORDS_SECRET"\ntimeout = "2s"\n'
    )


@dataclass(frozen=True)
class Update(BatchWrite[RecordUpdate]):
    """What a workflow's checkpoint does with a record: ``update_record``, then its job."""

    engine: Engine
    record: str
    record_id: str
    fields: dict[str, Any]
    key: str
    now: datetime
    caller: str | None = None

    @classmethod
    def apply_all(cls, conn: Connection, writes: Sequence[Self]) -> list[RecordUpdate]:
        results = []
        for write in writes:
            engine = write.engine
            update = update_record(
                conn,
                engine.bus,
                engine.settings.section("records"),
                write.record,
                write.record_id,
                write.fields,
                key=write.key,
                caller=write.caller,
                now=write.now,
            )
            if update.job is not None:
                insert_jobs(conn, [update.job], write.now)
            results.append(update)
        return results


async def write_record(
    engine: Engine,
    record: str,
    record_id: str,
    fields: dict[str, Any],
    key: str,
    caller: str | None = None,
) -> RecordUpdate:
    """Submit one ``Update`` at the engine's time and wait for its commit; a refused
    write raises its ``RecordError``."""
    now = engine.clock.now()
    try:
        return await engine.writer.submit(
            Update(engine, record, record_id, fields, key, now, caller)
        )
    except StorageError as exc:
        if isinstance(exc.__cause__, RecordError):
            raise exc.__cause__ from None
        raise
