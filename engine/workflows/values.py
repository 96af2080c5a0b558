"""Values a run keeps between steps, as JSON that reads back as the same values.

Expressions give decimals, timestamps and durations beside JSON's own types.
A run's state keeps them tagged (``{"$decimal": "12.50"}``), so that a
result read back at a later step compares as it did; what leaves the engine
(an event's data, a request body, the API) is ``plain``: a decimal as its
string, a time in RFC 3339, a duration in seconds. Money never becomes a
float on the way.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

__all__ = ["dump", "load", "plain"]


def dump(value: object) -> Any:
    """``value`` as tagged JSON."""
    if isinstance(value, bool) or value is None or isinstance(value, int | str | float):
        return value
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, datetime):
        return {"$time": value.astimezone(UTC).isoformat()}
    if isinstance(value, timedelta):
        return {"$seconds": value.total_seconds()}
    if isinstance(value, dict):
        out = {str(k): dump(v) for k, v in value.items()}
        # An object of the data whose one key looks like a tag stays an object.
        return {"$object": out} if len(out) == 1 and next(iter(out)).startswith("$") else out
    if isinstance(value, list | tuple):
        return [dump(item) for item in value]
    return str(value)


def load(value: Any) -> Any:
    """Tagged JSON back as values."""
    if isinstance(value, dict):
        if len(value) == 1:
            ((tag, inner),) = value.items()
            if tag == "$decimal":
                return Decimal(inner)
            if tag == "$time":
                return datetime.fromisoformat(inner)
            if tag == "$seconds":
                return timedelta(seconds=inner)
            if tag == "$object":
                return {k: load(v) for k, v in inner.items()}
        return {k: load(v) for k, v in value.items()}
    if isinstance(value, list):
        return [load(item) for item in value]
    return value


def plain(value: object) -> Any:
    """``value`` as the JSON that leaves the engine."""
    if isinstance(value, bool) or value is None or isinstance(value, int | str | float):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return str(value)
