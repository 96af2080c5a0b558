"""The engine's own identifiers and times: new ids (events, emails), and the one RFC 3339 reader.

Every time the engine reads from outside (an event's ``occurred_at``, a query's
``since``, a recovery window) goes through ``parse_rfc3339``, so each refuses
the same texts the same way: with a zone, and within what a UTC time can hold.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

__all__ = ["new_event_id", "new_id", "parse_rfc3339"]


def new_id(prefix: str) -> str:
    """A time-ordered id (UUIDv7 layout) after ``prefix`` and an underscore: 48 bits
    of milliseconds, then 74 random bits.

    The random bits come from the operating system, not a seeded generator: the
    bus takes an id it assigned as new without looking it up, so no client may
    predict one (senders see every id they are given) and send it first.
    """
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10)) >> 6  # 74 bits
    rand_a, rand_b = rand >> 62, rand & ((1 << 62) - 1)
    value = (millis << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return f"{prefix}_{value:032x}"


def new_event_id() -> str:
    """A new event id, ``evt_`` and a UUIDv7 (``new_id``)."""
    return new_id("evt")


def parse_rfc3339(text: str) -> datetime | None:
    """``text`` as an aware time in UTC, or None unless it is RFC 3339 with a zone."""
    try:
        parsed = datetime.fromisoformat(text)
        return parsed.astimezone(UTC) if parsed.tzinfo is not None else None
    except (ValueError, OverflowError):  # year 1 at +01:00 does not fit in UTC
        return None
