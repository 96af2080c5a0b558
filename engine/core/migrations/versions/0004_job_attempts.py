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


def _webhook_attempts() -> sa.Table:
    return sa.Table(
        "webhook_attempts",
        sa.MetaData(),
        sa.Column("id", serial, primary_key=True),
        sa.Column("job_id", serial, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("duration", sa.Float, nullable=False),
        sa.Column("status", sa.Integer),
        sa.Column("response_headers", sa.JSON, nullable=False),
        sa.Column("response_body", sa.Text, nullable=False),
        sa.Column("response_body_truncated", sa.Boolean, nullable=False),
        sa.Column("retry_after", sa.Float),
        sa.Column("error_class", sa.String(200)),
        sa.Column("error_message", sa.Text),
    )


def _job_attempts() -> sa.Table:
    return sa.Table(
        "job_attempts",
        sa.MetaData(),
        sa.Column("id", serial, primary_key=True),
        sa.Column("job_id", serial, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("duration", sa.Float, nullable=False),
        sa.Column("error_class", sa.String(200)),
        sa.Column("error_message", sa.Text),
        sa.Column("detail", sa.JSON, nullable=False),
    )


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("unplanned", sa.JSON()))
    op.create_index("ix_jobs_finished_at", "jobs", ["finished_at"])
    op.create_table(
        "job_attempts",
        sa.Column("id", serial, primary_key=True, autoincrement=True),
        sa.Column("job_id", serial, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("duration", sa.Float(), nullable=False),
        sa.Column("error_class", sa.String(200)),
        sa.Column("error_message", sa.Text()),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_job_attempts"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_job_attempts_job_id_jobs"),
    )
    op.create_index("ix_job_attempts_job_id_attempt", "job_attempts", ["job_id", "attempt"])
    conn = op.get_bind()
    old, new = _webhook_attempts(), _job_attempts()
    last = 0
    while True:
        rows = conn.execute(
            sa.select(old).where(old.c.id > last).order_by(old.c.id).limit(_BATCH)
        ).all()
        if not rows:
            break
        conn.execute(
            sa.insert(new),
            [
                {
                    "id": row.id,
                    "job_id": row.job_id,
                    "attempt": row.attempt,
                    "outcome": row.outcome,
                    "started_at": row.started_at,
                    "duration": row.duration,
                    "error_class": row.error_class,
                    "error_message": row.error_message,
                    "detail": {name: getattr(row, name) for name in _WEBHOOK_DETAIL},
                }
                for row in rows
            ],
        )
        last = rows[-1].id
    op.drop_index("ix_webhook_attempts_job_id_attempt", table_name="webhook_attempts")
    op.drop_table("webhook_attempts")


def downgrade() -> None:
    op.create_table(
        "webhook_attempts",
        sa.Column("id", serial, primary_key=True, autoincrement=True),
        sa.Column("job_id", serial, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("duration", sa.Float(), nullable=False),
        sa.Column("status", sa.Integer()),
        sa.Column("response_headers", sa.JSON(), nullable=False),
        sa.Column("response_body", sa.Text(), nullable=False),
        sa.Column("response_body_truncated", sa.Boolean(), nullable=False),
        sa.Column("retry_after", sa.Float()),
        sa.Column("error_class", sa.String(200)),
        sa.Column("error_message", sa.Text()),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_attempts"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_webhook_attempts_job_id_jobs"),
    )
    op.create_index("ix_webhook_attempts_job_id_attempt", "webhook_attempts", ["job_id", "attempt"])
    conn = op.get_bind()
    old, new = _webhook_attempts(), _job_attempts()
    jobs = sa.table("jobs", sa.column("id"), sa.column("kind"))
    webhook = sa.select(jobs.c.id).where(jobs.c.kind == "webhook")
    last = 0
    while True:
        rows = conn.execute(
            sa.select(new)
            .where(new.c.id > last, new.c.job_id.in_(webhook))
            .order_by(new.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            break
        conn.execute(
            sa.insert(old),
            [
                {
                    "id": row.id,
                    "job_id": row.job_id,
                    "attempt": row.attempt,
                    "outcome": row.outcome,
                    "started_at": row.started_at,
                    "duration": row.duration,
                    "error_class": row.error_class,
                    "error_message": row.error_message,
                    "status": row.detail.get("status"),
                    "response_headers": row.detail.get("response_headers", []),
                    "response_body": row.detail.get("response_body", ""),
                    "response_body_truncated": bool(row.detail.get("response_body_truncated")),
                    "retry_after": row.detail.get("retry_after"),
                }
                for row in rows
            ],
        )
        last = rows[-1].id
    op.drop_index("ix_job_attempts_job_id_attempt", table_name="job_attempts")
    op.drop_table("job_attempts")
    op.drop_index("ix_jobs_finished_at", table_name="jobs")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("unplanned")
