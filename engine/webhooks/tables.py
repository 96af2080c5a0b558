"""The webhooks capability's own table: each webhook's runtime state, by name.

Its deliveries are jobs (kind ``webhook``, group ``webhook:<name>``) and their
attempts are rows of the one attempt log, ``job_attempts``.
"""

from __future__ import annotations

from sqlalchemy import Column, Integer, String, Table

from engine.core.schema import UTCDateTime, metadata

__all__ = ["webhook_state"]

webhook_state = Table(
    "webhook_state",
    metadata,
    Column("name", String(200), primary_key=True),  # the webhook's name in the rules
    Column("state", String(20), nullable=False),  # active paused disabled
    Column("reason", String(500)),
    Column("changed_at", UTCDateTime(), nullable=False),
    Column("failing_since", UTCDateTime()),  # first failure of the current run of failures
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("last_success_at", UTCDateTime()),
    Column("last_failure_at", UTCDateTime()),
)
