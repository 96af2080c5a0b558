"""The email capability's tables: the email log, its events, receipts, suppressions.

Revision ID: m001_email
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from engine.core.schema import UTCDateTime

revision = "m001_email"
down_revision = None
branch_labels = ("email",)
depends_on = "0004_job_attempts"

serial = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_TIMES = (
    "sent_at",
    "delivered_at",
    "first_opened_at",
    "last_opened_at",
    "first_clicked_at",
    "last_clicked_at",
    "bounced_at",
    "complained_at",
    "unsubscribed_at",
    "failed_at",
)


def upgrade() -> None:
    op.create_table(
        "emails",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("request_hash", sa.String(64)),
        sa.Column("cause", sa.String(20), nullable=False),
        sa.Column("template", sa.String(200)),
        sa.Column("rule_set", sa.String(64)),
        sa.Column("category", sa.String(100)),
        sa.Column("sender", sa.String(400), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("recipient_name", sa.String(200)),
        sa.Column("reply_to", sa.String(400)),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("html", sa.Text()),
        sa.Column("text", sa.Text()),
        sa.Column("tracking", sa.Boolean(), nullable=False),
        sa.Column("data", sa.JSON()),
        sa.Column("message_id", sa.String(400), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("provider", sa.String(50)),
        sa.Column("provider_message_id", sa.String(400)),
        sa.Column("error", sa.Text()),
        sa.Column("bounce", sa.JSON()),
        sa.Column("open_count", sa.Integer(), nullable=False),
        sa.Column("click_count", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        *(sa.Column(name, UTCDateTime()) for name in _TIMES),
        sa.PrimaryKeyConstraint("id", name="pk_emails"),
        sa.UniqueConstraint("key", name="uq_emails_key"),
    )
    op.create_index("ix_emails_created_at", "emails", ["created_at"])
    op.create_index("ix_emails_template_created_at", "emails", ["template", "created_at"])
    op.create_index("ix_emails_recipient_created_at", "emails", ["recipient", "created_at"])
    op.create_index("ix_emails_status_created_at", "emails", ["status", "created_at"])
    op.create_table(
        "email_events",
        sa.Column("id", serial, nullable=False, autoincrement=True),
        sa.Column("email_id", sa.String(40), nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_email_events"),
    )
    op.create_index("ix_email_events_email_id_id", "email_events", ["email_id", "id"])
    op.create_table(
        "email_receipts",
        sa.Column("provider", sa.String(20), nullable=False),
        sa.Column("receipt", sa.String(200), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("provider", "receipt", name="pk_email_receipts"),
    )
    op.create_table(
        "email_suppressions",
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("category", sa.String(100), nullable=False),
        sa.Column("reason", sa.String(20), nullable=False),
        sa.Column("detail", sa.String(500)),
        sa.Column("email_id", sa.String(40)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("address", "category", name="pk_email_suppressions"),
    )


def downgrade() -> None:
    op.drop_table("email_suppressions")
    op.drop_table("email_receipts")
    op.drop_index("ix_email_events_email_id_id", table_name="email_events")
    op.drop_table("email_events")
    for index in ("status", "recipient", "template"):
        op.drop_index(f"ix_emails_{index}_created_at", table_name="emails")
    op.drop_index("ix_emails_created_at", table_name="emails")
    op.drop_table("emails")
