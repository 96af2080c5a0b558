"""The path of an event into the engine: ingest, the bus, the catalog.

Its names are imported on first use (``engine.lazy``).
"""

from __future__ import annotations

import typing as _typing

from engine.lazy import exports as _exports

if _typing.TYPE_CHECKING:
    from engine.events.bus import Appended, AppendEvents, Bus, StoredEvent, Unplanned, match
    from engine.events.ids import new_event_id, new_id, parse_rfc3339

__all__ = [
    "AppendEvents",
    "Appended",
    "Bus",
    "StoredEvent",
    "Unplanned",
    "match",
    "new_event_id",
    "new_id",
    "parse_rfc3339",
]

_HOMES = {
    "AppendEvents": "engine.events.bus",
    "Appended": "engine.events.bus",
    "Bus": "engine.events.bus",
    "StoredEvent": "engine.events.bus",
    "Unplanned": "engine.events.bus",
    "match": "engine.events.bus",
    "new_event_id": "engine.events.ids",
    "new_id": "engine.events.ids",
    "parse_rfc3339": "engine.events.ids",
}

if not _typing.TYPE_CHECKING:  # so that mypy still checks every name against the imports
    __getattr__, __dir__ = _exports(__name__, _HOMES, globals())
