"""Jobs say what caused them beyond an event: ``caller`` names, for instance, the
workflow step whose job it is (``workflow:<run>:<step>``), so that the kind that
asked for the job hears of its end in the transaction that records it.

Revision ID: 0005_job_callers
Revises: 0004_job_attempts
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_job_callers"
down_revision = "0004_job_attempts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN: SQLite takes it in place, without copying the table
    # (which the attempt log's foreign key would refuse).
    op.add_column("jobs", sa.Column("caller", sa.String(300)))
    op.create_index("ix_jobs_caller", "jobs", ["caller"])


def downgrade() -> None:
    op.drop_index("ix_jobs_caller", "jobs")
    op.drop_column("jobs", "caller")
