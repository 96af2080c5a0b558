"""The records capability's tables: the records kept by the engine, and the writes made.

Revision ID: r001_records
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from engine.core.schema import UTCDateTime

revision = "r001_records"
down_revision = None
branch_labels = ("records",)
depends_on = "0005_job_callers"


def upgrade() -> None:
    op.create_table(
        "records",
        sa.Column("collection", sa.String(100), nullable=False),
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("collection", "id", name="pk_records"),
    )
    op.create_table(
        "record_writes",
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("collection", sa.String(100), nullable=False),
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("written_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_record_writes"),
    )


def downgrade() -> None:
    op.drop_table("record_writes")
    op.drop_table("records")
