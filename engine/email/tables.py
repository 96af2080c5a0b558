"""The email capability's tables: the email log, what happened to each email, suppressions.

An email is a row of ``emails`` (the log: what was rendered, where it went,
its status and counts) and a job of kind ``email`` whose idempotency key is the
row's ``key``. Everything heard about it afterwards (a provider's delivery
report, an open, a click, a bounce) is a row of ``email_events``; the ids of
provider reports and webhook tokens already seen are ``email_receipts``.
``email_suppressions`` holds the addresses not to send to, per category.
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Index, Integer, String, Table, Text

from engine.core.schema import Serial, UTCDateTime, metadata

__all__ = ["email_events", "email_receipts", "email_suppressions", "emails"]

emails = Table(
    "emails",
    metadata,
    Column("id", String(40), primary_key=True),  # eml_ and a UUIDv7
    Column("key", String(300), nullable=False, unique=True),  # its job's idempotency key
    Column("request_hash", String(64)),  # what an Idempotency-Key was first used with
    Column("cause", String(20), nullable=False),  # api workflow event
    Column("template", String(200)),  # none for an ad hoc email
    Column("rule_set", String(64)),
    Column("category", String(100)),
    Column("sender", String(400), nullable=False),
    Column("recipient", String(320), nullable=False),  # the address, lower case
    Column("recipient_name", String(200)),  # the display name it was given with
    Column("reply_to", String(400)),
    Column("subject", Text, nullable=False),
    Column("html", Text),
    Column("text", Text),
    Column("tracking", Boolean, nullable=False),
    Column("data", JSON),  # the template's variables, secrets redacted
    Column("message_id", String(400), nullable=False),
    # queued sent delivered opened clicked bounced complained unsubscribed dropped
    # suppressed failed
    Column("status", String(20), nullable=False),
    Column("provider", String(50)),
    Column("provider_message_id", String(400)),
    Column("error", Text),
    Column("bounce", JSON),  # type and reason of the last bounce
    Column("open_count", Integer, nullable=False, default=0),
    Column("click_count", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime()),
    Column("delivered_at", UTCDateTime()),
    Column("first_opened_at", UTCDateTime()),
    Column("last_opened_at", UTCDateTime()),
    Column("first_clicked_at", UTCDateTime()),
    Column("last_clicked_at", UTCDateTime()),
    Column("bounced_at", UTCDateTime()),
    Column("complained_at", UTCDateTime()),
    Column("unsubscribed_at", UTCDateTime()),
    Column("failed_at", UTCDateTime()),
    Index(None, "created_at"),
    Index(None, "template", "created_at"),
    Index(None, "recipient", "created_at"),
    Index(None, "status", "created_at"),
)

email_events = Table(
    "email_events",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("email_id", String(40), nullable=False),
    Column("type", String(20), nullable=False),  # delivered opened clicked bounced ...
    Column("source", String(20), nullable=False),  # sendgrid mailgun tracking
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("detail", JSON, nullable=False),
    Index(None, "email_id", "id"),
)

email_receipts = Table(
    "email_receipts",
    metadata,
    Column("provider", String(20), primary_key=True),
    Column("receipt", String(200), primary_key=True),  # sg_event_id, a Mailgun token or event id
    Column("received_at", UTCDateTime(), nullable=False),
)

email_suppressions = Table(
    "email_suppressions",
    metadata,
    Column("address", String(320), primary_key=True),  # lower case
    Column("category", String(100), primary_key=True),  # "" for every category
    Column("reason", String(20), nullable=False),  # bounced complained unsubscribed manual
    Column("detail", String(500)),
    Column("email_id", String(40)),
    Column("created_at", UTCDateTime(), nullable=False),
)
