"""The echo capability's table, on a branch of its own.

Revision ID: e001_echo_runs
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "e001_echo_runs"
down_revision = None
branch_labels = ("echo",)
depends_on = "0004_job_attempts"


def upgrade() -> None:
    op.create_table(
        "echo_runs",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("workflow", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("job_id", name="pk_echo_runs"),
    )


def downgrade() -> None:
    op.drop_table("echo_runs")
