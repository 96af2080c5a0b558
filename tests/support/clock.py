"""Times for tests."""

from __future__ import annotations

from datetime import UTC, datetime


def utc(year: int = 2026, month: int = 1, day: int = 1, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)
