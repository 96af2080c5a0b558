"""One attempt log for every kind of job; events say which matched rules planned nothing;
finished jobs are indexed by when they finished (what retention prunes).

``webhook_attempts`` becomes ``job_attempts``: the columns every kind has
(attempt, outcome, start, duration, error) and a JSON ``detail`` with what is
the kind's own (a webhook's status, response headers and body). Existing rows
are copied with their detail, then the old table is dropped.

Revision ID: 0004_job_attempts
Revises: 0003_group_states
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op

from engine.core.schema import UTCDateTime

revision = "0004_job_attempts"
down_revision = "0003_group_states"
branch_labels = None
depends_on = None

serial = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_BATCH = 1_000
_WEBHOOK_DETAIL = (
    "status",
    "response_headers",
    "response_body",
    "response_body_truncated",
    "retry_after",
)


def _attempt_columns(*own: sa.Column[Any]) -> list[sa.Column[Any]]:
    """The columns both attempt tables have, then ``own``, then the error's."""
    return [
        sa.Column("id", serial, primary_key=True, autoincrement=True),
        sa.Column("job_id", serial, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("duration", sa.Float(), nullable=False),
        *own,
        sa.Column("error_class", sa.String(200)),
        sa.Column("error_message", sa.Text()),
    ]


def _webhook_columns() -> list[sa.Column[Any]]:
    return _attempt_columns(
        sa.Column("status", sa.Integer()),
        sa.Column("response_headers", sa.JSON(), nullable=False),
        sa.Column("response_body", sa.Text(), nullable=False),
        sa.Column("response_body_truncated", sa.Boolean(), nullable=False),
        sa.Column("retry_after", sa.Float()),
    )


def _job_columns() -> list[sa.Column[Any]]:
    return _attempt_columns(sa.Column("detail", sa.JSON(), nullable=False))


def _webhook_attempts() -> sa.Table:
    return sa.Table("webhook_attempts", sa.MetaData(), *_webhook_columns())


def _job_attempts() -> sa.Table:
    return sa.Table("job_attempts", sa.MetaData(), *_job_columns())


_COMMON = ("id", "job_id", "attempt", "outcome", "started_at", "duration")
_ERRORS = ("error_class", "error_message")


def _as_job_attempt(row: sa.Row[Any]) -> dict[str, Any]:
    common = {name: getattr(row, name) for name in (*_COMMON, *_ERRORS)}
    return common | {"detail": {name: getattr(row, name) for name in _WEBHOOK_DETAIL}}


def _as_webhook_attempt(row: sa.Row[Any]) -> dict[str, Any]:
    detail = row.detail
    return {name: getattr(row, name) for name in (*_COMMON, *_ERRORS)} | {
        "status": detail.get("status"),
        "response_headers": detail.get("response_headers", []),
        "response_body": detail.get("response_body", ""),
        "response_body_truncated": bool(detail.get("response_body_truncated")),
        "retry_after": detail.get("retry_after"),
    }


def _copy(
    source: sa.Select[Any],
    key: sa.Column[Any],
    target: sa.Table,
    convert: Callable[[sa.Row[Any]], dict[str, Any]],
) -> None:
    """Copy the rows of ``source`` into ``target``, in batches by ``key``."""
    conn = op.get_bind()
    last = 0
    while True:
        rows = conn.execute(source.where(key > last).order_by(key).limit(_BATCH)).all()
        if not rows:
            return
        conn.execute(sa.insert(target), [convert(row) for row in rows])
        last = rows[-1].id


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("unplanned", sa.JSON()))
    op.create_index("ix_jobs_finished_at", "jobs", ["finished_at"])
    op.create_table(
        "job_attempts",
        *_job_columns(),
        sa.PrimaryKeyConstraint("id", name="pk_job_attempts"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_job_attempts_job_id_jobs"),
    )
    op.create_index("ix_job_attempts_job_id_attempt", "job_attempts", ["job_id", "attempt"])
    old, new = _webhook_attempts(), _job_attempts()
    _copy(sa.select(old), old.c.id, new, _as_job_attempt)
    op.drop_index("ix_webhook_attempts_job_id_attempt", table_name="webhook_attempts")
    op.drop_table("webhook_attempts")


def downgrade() -> None:
    op.create_table(
        "webhook_attempts",
        *_webhook_columns(),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_attempts"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_webhook_attempts_job_id_jobs"),
    )
    op.create_index("ix_webhook_attempts_job_id_attempt", "webhook_attempts", ["job_id", "attempt"])
    old, new = _webhook_attempts(), _job_attempts()
    jobs = sa.table("jobs", sa.column("id"), sa.column("kind"))
    webhook = sa.select(jobs.c.id).where(jobs.c.kind == "webhook")
    _copy(sa.select(new).where(new.c.job_id.in_(webhook)), new.c.id, old, _as_webhook_attempt)
    op.drop_index("ix_job_attempts_job_id_attempt", table_name="job_attempts")
    op.drop_table("job_attempts")
    op.drop_index("ix_jobs_finished_at", table_name="jobs")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("unplanned")
