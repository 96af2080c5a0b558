"""The engine's tables, in portable SQLAlchemy types (SQLite now, PostgreSQL later).

Migrations in ``engine/migrations`` create these; this module is the
description queries are written against, and the target Alembic compares to.
Times are stored as timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    false,
    text,
)

__all__ = [
    "UNFINISHED",
    "Serial",
    "UTCDateTime",
    "events",
    "job_attempts",
    "job_holds",
    "jobs",
    "metadata",
    "rule_sets",
]

# Constraint names that are stable across databases, so later migrations can name them.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

# An auto-incrementing 64-bit key; SQLite only auto-increments a column typed INTEGER.
Serial = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that goes in and comes out timezone-aware in UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; pass an aware UTC time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


rule_sets = Table(
    "rule_sets",
    metadata,
    Column("version", String(64), primary_key=True),  # hash of the compiled rule set
    Column("applied_at", UTCDateTime(), nullable=False),
    Column("git_commit", String(40)),
    Column("files", JSON, nullable=False),
    Column("ir", JSON, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("seq", Serial, primary_key=True, autoincrement=True),  # commit order
    Column("id", String(200), nullable=False, unique=True),  # the deduplication key
    Column("type", String(200), nullable=False),
    Column("source", String(500)),
    Column("subject", String(500)),
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("data", JSON, nullable=False),
    Column("rule_set", String(64), ForeignKey("rule_sets.version")),
    # Matched rules whose kind planned nothing: [{"kind", "name", "message"}], or null.
    Column("unplanned", JSON),
    Index(None, "type", "seq"),
    Index(None, "received_at"),
)

# The states of a job that may still run: an ordered job waits behind these.
UNFINISHED = ("pending", "held", "waiting", "running")
_UNFINISHED_SQL = "(" + ", ".join(f"'{state}'" for state in UNFINISHED) + ")"

jobs = Table(
    "jobs",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("kind", String(50), nullable=False),  # webhook, email, workflow, ...
    Column("payload", JSON, nullable=False),
    # pending held waiting running succeeded failed cancelled
    Column("state", String(20), nullable=False),
    Column("due_at", UTCDateTime(), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("max_attempts", Integer, nullable=False),
    Column("lease_owner", String(100)),
    Column("lease_expires_at", UTCDateTime()),
    Column("idempotency_key", String(300), nullable=False, unique=True),
    Column("event_id", String(200), ForeignKey("events.id")),
    Column("rule_set", String(64), ForeignKey("rule_sets.version")),
    Column("last_error", Text),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
    # Jobs of one group can be held together; an ordered job waits for the earlier ones.
    Column("group_key", String(300)),
    Column("ordered", Boolean, nullable=False, default=False, server_default=false()),
    # What asked for the job beyond an event (``workflow:<run>:<step>``): the kind
    # named before the first colon hears of the job's end (``JobKind.follower``).
    Column("caller", String(300)),
    Index(None, "state", "due_at"),
    Index(None, "caller"),
    Index(None, "event_id"),
    Index(None, "finished_at"),  # what retention prunes, oldest first
    # A group's jobs newest first, and counted by state from the index alone.
    Index(None, "group_key", "id", "state"),
    # The unfinished jobs of ordered groups: what an ordered job waits behind.
    # `ordered` leads, so that a query naming it and its group has two equalities
    # here against one in (group_key, id, state), which SQLite took otherwise
    # (walking the group's history to its first waiting job).
    Index(
        "ix_jobs_ordered_unfinished",
        "ordered",
        "group_key",
        "id",
        sqlite_where=text(f"ordered = 1 AND state IN {_UNFINISHED_SQL}"),
        postgresql_where=text(f"ordered AND state IN {_UNFINISHED_SQL}"),
    ),
)

job_holds = Table(
    "job_holds",
    metadata,
    Column("group_key", String(300), primary_key=True),  # pending jobs of this group wait
    Column("reason", String(200), nullable=False),
    Column("held_at", UTCDateTime(), nullable=False),
)

# One row per attempt of any job: the timeline the API shows across kinds.
job_attempts = Table(
    "job_attempts",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("job_id", Serial, ForeignKey("jobs.id"), nullable=False),
    Column("attempt", Integer, nullable=False),  # 1-based, as the job counted it
    Column("outcome", String(20), nullable=False),  # the kind's word: delivered, timeout, ...
    Column("started_at", UTCDateTime(), nullable=False),
    Column("duration", Float, nullable=False),
    Column("error_class", String(200)),
    Column("error_message", Text),
    Column("detail", JSON, nullable=False),  # kind-specific, capped (engine.jobs.queue)
    Index(None, "job_id", "attempt"),
)
