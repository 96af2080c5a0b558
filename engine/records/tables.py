"""The records capability's tables: the records kept by the engine, and the writes made.

A record of a table store is a row of ``records``, keyed by its name in
``[records]`` (``collection``) and its id; ``version`` counts its writes. Each
write is a row of ``record_writes`` under its idempotency key, with what it
answered, so that a write repeated with its key changes nothing and answers
the same. A record of an http store is kept by the platform: its writes are
jobs of kind ``record``, keyed by the same idempotency keys.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Integer, String, Table

from engine.core.schema import UTCDateTime, metadata

__all__ = ["record_writes", "records"]

records = Table(
    "records",
    metadata,
    Column("collection", String(100), primary_key=True),  # the record's name in [records]
    Column("id", String(200), primary_key=True),
    Column("fields", JSON, nullable=False),  # every field, after the last write
    Column("version", Integer, nullable=False),  # 1 for the first write, then one more each
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

record_writes = Table(
    "record_writes",
    metadata,
    Column("key", String(300), primary_key=True),  # the write's idempotency key
    Column("collection", String(100), nullable=False),
    Column("id", String(200), nullable=False),
    Column("request_hash", String(64), nullable=False),  # of the record, id and fields asked for
    Column("result", JSON, nullable=False),  # what the write answered
    Column("written_at", UTCDateTime(), nullable=False),
)
