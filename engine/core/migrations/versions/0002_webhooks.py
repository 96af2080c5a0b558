"""Webhook delivery: job groups (holds, ordering), webhook runtime state, the attempt log.

Revision ID: 0002_webhooks
Revises: 0001_core
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from engine.core.schema import UTCDateTime

revision = "0002_webhooks"
down_revision = "0001_core"
branch_labels = None
depends_on = None

serial = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("group_key", sa.String(300)))
        batch.add_column(
            sa.Column("ordered", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_index("ix_jobs_group_key_id", "jobs", ["group_key", "id"])
    op.create_table(
        "job_holds",
        sa.Column("group_key", sa.String(300), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("held_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("group_key", name="pk_job_holds"),
    )
    op.create_table(
        "webhook_state",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(500)),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.Column("failing_since", UTCDateTime()),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("last_success_at", UTCDateTime()),
        sa.Column("last_failure_at", UTCDateTime()),
        sa.PrimaryKeyConstraint("name", name="pk_webhook_state"),
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("id", serial, autoincrement=True, nullable=False),
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
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_webhook_attempts_job_id_jobs"),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_attempts"),
    )
    op.create_index("ix_webhook_attempts_job_id_attempt", "webhook_attempts", ["job_id", "attempt"])


def downgrade() -> None:
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_state")
    op.drop_table("job_holds")
    op.drop_index("ix_jobs_group_key_id", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("ordered")
        batch.drop_column("group_key")
