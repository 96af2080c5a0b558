"""The engine core: rule-set versions, events and jobs.

Revision ID: 0001_core
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from engine.core.schema import UTCDateTime

revision = "0001_core"
down_revision = None
branch_labels = None
depends_on = None

serial = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "rule_sets",
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("applied_at", UTCDateTime(), nullable=False),
        sa.Column("git_commit", sa.String(40)),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("ir", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("version", name="pk_rule_sets"),
    )
    op.create_table(
        "events",
        sa.Column("seq", serial, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("type", sa.String(200), nullable=False),
        sa.Column("source", sa.String(500)),
        sa.Column("subject", sa.String(500)),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("rule_set", sa.String(64)),
        sa.ForeignKeyConstraint(
            ["rule_set"], ["rule_sets.version"], name="fk_events_rule_set_rule_sets"
        ),
        sa.PrimaryKeyConstraint("seq", name="pk_events"),
        sa.UniqueConstraint("id", name="uq_events_id"),
    )
    op.create_index("ix_events_type_seq", "events", ["type", "seq"])
    op.create_index("ix_events_received_at", "events", ["received_at"])
    op.create_table(
        "jobs",
        sa.Column("id", serial, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(100)),
        sa.Column("lease_expires_at", UTCDateTime()),
        sa.Column("idempotency_key", sa.String(300), nullable=False),
        sa.Column("event_id", sa.String(200)),
        sa.Column("rule_set", sa.String(64)),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime()),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name="fk_jobs_event_id_events"),
        sa.ForeignKeyConstraint(
            ["rule_set"], ["rule_sets.version"], name="fk_jobs_rule_set_rule_sets"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.UniqueConstraint("idempotency_key", name="uq_jobs_idempotency_key"),
    )
    op.create_index("ix_jobs_state_due_at", "jobs", ["state", "due_at"])
    op.create_index("ix_jobs_event_id", "jobs", ["event_id"])


def downgrade() -> None:
    op.drop_table("jobs")
    op.drop_table("events")
    op.drop_table("rule_sets")
