"""The workflows capability's tables: runs, step checkpoints, waits, per-workflow state
and schedules.

Revision ID: w001_workflows
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from engine.core.schema import UTCDateTime

revision = "w001_workflows"
down_revision = None
branch_labels = ("workflows",)
depends_on = "0005_job_callers"

serial = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "workflow_runs",
        sa.Column("seq", serial, autoincrement=True),
        sa.Column("id", sa.String(length=40), nullable=False, unique=True),
        sa.Column("workflow", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("trigger", sa.String(length=20), nullable=False),
        sa.Column("event", sa.JSON(), nullable=False),
        sa.Column("event_id", sa.String(length=200)),
        sa.Column("user_id", sa.String(length=200)),
        sa.Column("event_seq", sa.Integer(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("tick", sa.Integer(), nullable=False),
        sa.Column("current_step", sa.String(length=300)),
        sa.Column("variables", sa.JSON(), nullable=False),
        sa.Column("concurrency_key", sa.String(length=500)),
        sa.Column("debounce_key", sa.String(length=500)),
        sa.Column("dedup_key", sa.String(length=500)),
        sa.Column("timeout_at", UTCDateTime()),
        sa.Column("error", sa.Text()),
        sa.Column("output", sa.JSON()),
        sa.Column("rerun_of", sa.String(length=40)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime()),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime()),
        sa.PrimaryKeyConstraint("seq", name="pk_workflow_runs"),
    )
    op.create_index(
        "ix_workflow_runs_debounce_key_status", "workflow_runs", ["debounce_key", "status"]
    )
    op.create_index(
        "ix_workflow_runs_concurrency_key_status_seq",
        "workflow_runs",
        ["concurrency_key", "status", "seq"],
    )
    op.create_index("ix_workflow_runs_workflow_seq", "workflow_runs", ["workflow", "seq"])
    op.create_index(
        "ix_workflow_runs_dedup_key_created_at", "workflow_runs", ["dedup_key", "created_at"]
    )
    op.create_index("ix_workflow_runs_workflow_status", "workflow_runs", ["workflow", "status"])
    op.create_table(
        "workflow_steps",
        sa.Column("run_id", sa.String(length=40)),
        sa.Column("step", sa.String(length=300)),
        sa.Column("round", sa.Integer()),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200)),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("input", sa.JSON()),
        sa.Column("output", sa.JSON()),
        sa.Column("error", sa.Text()),
        sa.Column("job_key", sa.String(length=300)),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("due_at", UTCDateTime()),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime()),
        sa.Column("duration", sa.Float()),
        sa.PrimaryKeyConstraint("run_id", "step", "round", name="pk_workflow_steps"),
    )
    op.create_table(
        "workflow_waits",
        sa.Column("pattern", sa.String(length=200)),
        sa.Column("run_id", sa.String(length=40)),
        sa.Column("step", sa.String(length=300), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("pattern", "run_id", name="pk_workflow_waits"),
    )
    op.create_index("ix_workflow_waits_run_id", "workflow_waits", ["run_id"])
    op.create_table(
        "workflow_states",
        sa.Column("workflow", sa.String(length=200)),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("workflow", name="pk_workflow_states"),
    )
    op.create_table(
        "workflow_schedules",
        sa.Column("workflow", sa.String(length=200)),
        sa.Column("cron", sa.String(length=200)),
        sa.Column("timezone", sa.String(length=100)),
        sa.Column("next_slot", sa.String(length=40), nullable=False),
        sa.Column("next_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("workflow", "cron", "timezone", name="pk_workflow_schedules"),
    )


def downgrade() -> None:
    for table in (
        "workflow_schedules",
        "workflow_states",
        "workflow_waits",
        "workflow_steps",
        "workflow_runs",
    ):
        op.drop_table(table)
