"""The attempt log: one row per attempt of any job, written with the job's outcome.

Every kind's attempts share the columns a timeline needs (attempt number,
outcome, start, duration, error) and keep what is their own in ``detail``:
JSON, capped at ``DETAIL_LIMIT`` bytes (1 MiB) so that one odd answer cannot
bloat the table. A detail over the cap keeps its small values, cuts its long
strings to fit and notes what it cut or dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.engine import Connection, Row
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.core.rows import insert_rows
from engine.core.schema import job_attempts
from engine.jobs.kinds import AttemptRecord

__all__ = ["DETAIL_LIMIT", "attempt_dict", "capped", "load_attempts", "log_attempts"]

DETAIL_LIMIT = 1024 * 1024
_SMALL = 1024  # a value kept whole from a detail over the cap is at most this long as JSON
_NOTE = 256  # room left for the note of what was cut


def capped(detail: dict[str, Any], limit: int = DETAIL_LIMIT) -> dict[str, Any]:
    """``detail`` if its JSON fits in ``limit`` bytes; else its small values whole,
    its long strings cut to what fits, the rest dropped, and a note of it all
    under ``"truncated"``: ``{"bytes": size, "cut": [...], "dropped": [...]}``."""
    size = len(orjson.dumps(detail, default=str))
    if size <= limit:
        return detail
    kept: dict[str, Any] = {}
    large: list[str] = []
    for key, value in detail.items():
        if len(orjson.dumps(value, default=str)) <= _SMALL:
            kept[key] = value
        else:
            large.append(key)
    budget = limit - len(orjson.dumps(kept, default=str)) - _NOTE
    cut: list[str] = []
    dropped: list[str] = []
    for key in large:
        value = detail[key]
        if isinstance(value, str) and budget > 0:
            # Bytes of UTF-8, not characters; JSON escapes may take a little more.
            part = value.encode()[:budget].decode("utf-8", "ignore")
            kept[key] = part
            budget -= len(orjson.dumps(part))
            cut.append(key)
        else:
            dropped.append(key)
    kept["truncated"] = {"bytes": size, "cut": cut, "dropped": dropped}
    return kept


def log_attempts(
    conn: Connection, entries: Sequence[tuple[int, int | None, AttemptRecord | None]]
) -> None:
    """Insert the attempts ``(job id, attempt number, record)`` in one statement."""
    insert_rows(
        conn,
        job_attempts,
        [
            {
                "job_id": job_id,
                "attempt": number or 0,
                "outcome": record.outcome,
                "started_at": record.started_at,
                "duration": record.duration,
                "error_class": record.error_class,
                "error_message": record.error_message,
                "detail": capped(dict(record.detail)),
            }
            for job_id, number, record in entries
            if record is not None
        ],
    )


async def load_attempts(conn: AsyncConnection, job_id: int) -> list[Row[Any]]:
    """The attempts of one job, oldest first."""
    query = select(job_attempts).where(job_attempts.c.job_id == job_id)
    return list((await conn.execute(query.order_by(job_attempts.c.id))).all())


def attempt_dict(row: Row[Any]) -> dict[str, Any]:
    """An attempt as the API shows it: the common fields, then the kind's detail."""
    return {
        "attempt": row.attempt,
        "outcome": row.outcome,
        "started_at": row.started_at,
        "duration": row.duration,
        "error_class": row.error_class,
        "error_message": row.error_message,
        "detail": row.detail,
    }
